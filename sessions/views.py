"""The /voice/sessions API. Views parse, authorise and call sessions.services."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sessions import services
from sessions.models import VoiceSession
from sessions.selectors import SessionFilter, session_visible_to, sessions_visible_to
from sessions.serializers import (
    ElevenLabsActionInput,
    SessionCreateInput,
    SessionDetailOutput,
    SessionEndInput,
    SessionEventInput,
    SessionOutput,
    StartSessionInput,
)
from voiceagent.errors import ApplicationError
from voiceagent.ranged_files import stored_file_response
from voiceagent.throttling import SettingsRateThrottle

logger = logging.getLogger("voiceagent.sessions")


class SessionCreateThrottle(SettingsRateThrottle):
    """Sessions one user may create (SESSION_CREATE_THROTTLE), whichever endpoint creates them."""

    scope = "session_create"


def throttle_session_create(view: APIView, request: Request) -> None:
    """Raise DRF's Throttled (429 with Retry-After) when ``request.user`` has created too many sessions.

    Called by the views that create a session, and only on that path: listing sessions or
    connecting one that exists costs nothing from the budget.
    """
    throttle = SessionCreateThrottle()
    if not throttle.allow_request(request, view):
        view.throttled(request, throttle.wait())


class SessionListCreateApi(generics.ListAPIView):
    serializer_class = SessionOutput
    filterset_class = SessionFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return VoiceSession.objects.none()
        return sessions_visible_to(self.request.user)

    @extend_schema(request=SessionCreateInput, responses={201: SessionOutput})
    def post(self, request: Request) -> Response:
        throttle_session_create(self, request)
        data = SessionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        session = services.session_create(
            user=request.user,
            customer_id=fields["customer_id"],
            agent_type=fields["agent_type"],
            direction=fields["direction"],
            locale=fields["locale"],
            # Without an API key every session runs against the simulated agent.
            simulation=fields["simulation"] or settings.SIMULATION_MODE,
            dynamic_variables=fields["dynamic_variables"],
            phone_number=fields["phone_number"],
        )
        return Response(SessionOutput(session).data, status=status.HTTP_201_CREATED)


class SessionDetailApi(APIView):
    @extend_schema(responses=SessionDetailOutput)
    def get(self, request: Request, session_id) -> Response:
        session = session_visible_to(request.user, session_id)
        return Response(SessionDetailOutput(session).data)


class SessionEndApi(APIView):
    @extend_schema(request=SessionEndInput, responses=SessionOutput)
    def put(self, request: Request, session_id) -> Response:
        session = session_visible_to(request.user, session_id)
        data = SessionEndInput(data=request.data)
        data.is_valid(raise_exception=True)
        session = services.session_end(session=session, reason=data.validated_data["reason"])
        return Response(SessionOutput(session).data)

    @extend_schema(request=SessionEndInput, responses=SessionOutput)
    def post(self, request: Request, session_id) -> Response:
        return self.put(request, session_id)


class SessionEventsApi(APIView):
    """`POST /voice/sessions/{id}/events`: what only the browser sees (connected, mode, disconnect, errors)."""

    @extend_schema(request=SessionEventInput, responses=SessionOutput)
    def post(self, request: Request, session_id) -> Response:
        session = session_visible_to(request.user, session_id)
        data = SessionEventInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        event_type = fields.pop("type")
        session = services.session_client_event(session=session, event_type=event_type, data=fields)
        return Response(SessionOutput(session).data)


class ErrorsAsJson(BaseContentNegotiation):
    """For views whose success is not rendered (a file): errors are JSON whatever Accept asks for.

    DRF would answer ``Accept: audio/mpeg`` with 406, as no renderer makes audio.
    """

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class SessionAudioApi(APIView):
    """`GET /voice/sessions/{id}/audio`: the call's recording, streamed, with one byte range so players can seek."""

    renderer_classes = [JSONRenderer]
    content_negotiation_class = ErrorsAsJson

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "Range",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="One range: bytes=a-b, bytes=a- or bytes=-n. Several ranges get the whole file.",
            )
        ],
        responses={
            (200, "audio/mpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The whole recording."),
            (206, "audio/mpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The range asked for."),
            404: OpenApiResponse(description="No such session for this user, or it has no recording."),
            416: OpenApiResponse(description="The range lies past the end; Content-Range gives the size."),
        },
    )
    def get(self, request: Request, session_id) -> HttpResponseBase:
        session = session_visible_to(request.user, session_id)
        if not session.audio:
            raise ApplicationError("This session has no recording.", code="no_recording", status=404)
        try:
            return stored_file_response(
                request._request,
                storage=session.audio.storage,
                name=session.audio.name,
                content_type="audio/mpeg",
                filename=session.recording_filename,
            )
        except FileNotFoundError:
            logger.warning("recording of session %s is missing from storage: %s", session.pk, session.audio.name)
            raise ApplicationError(
                "The recording's file is missing from storage.", code="recording_missing", status=404
            ) from None


# --- The prototype's /api/... contracts (camelCase input) ----------------------------------


class StartSessionApi(APIView):
    """`POST /api/voice/sessions`: create a session and mint its credential in one round trip."""

    @extend_schema(request=StartSessionInput, responses={201: dict})
    def post(self, request: Request) -> Response:
        throttle_session_create(self, request)
        data = StartSessionInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        key = request.headers.get("Idempotency-Key", "").strip()[:128] or None
        session, conversation, replayed = services.session_start(
            user=request.user,
            customer_id=fields["customerId"],
            agent_type=fields["agentType"],
            locale=fields["locale"],
            direction=fields["direction"],
            dynamic_variables=fields["dynamicVariables"],
            text_only=fields["textOnly"],
            simulation=fields["simulation"],
            phone_number=fields["phoneNumber"],
            idempotency_key=key,
        )
        body = {
            "backend_session": SessionOutput(session).data,
            "elevenlabs_conversation": conversation,
            "agent_type": session.agent_type,
        }
        return Response(body, status=status.HTTP_200_OK if replayed else status.HTTP_201_CREATED)


class ElevenLabsActionApi(APIView):
    """`POST /api/elevenlabs`: start_conversation (a credential) or end_conversation."""

    @extend_schema(request=ElevenLabsActionInput, responses=dict)
    def post(self, request: Request) -> Response:
        data = ElevenLabsActionInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        if fields["action"] == "end_conversation":
            session = session_visible_to(request.user, fields["sessionId"])
            session = services.session_end(session=session)
            return Response({"success": True, "sessionId": str(session.pk), "status": session.status})

        if "sessionId" in fields:
            session = session_visible_to(request.user, fields["sessionId"])
            if "agentType" in fields and fields["agentType"] != session.agent_type:
                raise ValidationError({"agentType": f"The session is a {session.agent_type} session."})
            session, credential = services.session_connect(session=session, text_only=fields["textOnly"])
            credential = credential.as_response()
        else:
            throttle_session_create(self, request)
            session, credential, _ = services.session_start(
                user=request.user,
                customer_id=fields.get("customerId") or f"user-{request.user.pk}",
                agent_type=fields["agentType"],
                text_only=fields["textOnly"],
            )
        return Response({**credential, "sessionId": str(session.pk)}, status=status.HTTP_201_CREATED)
