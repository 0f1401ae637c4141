"""The /voice/sessions API. Views parse, authorise and call sessions.services."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
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
from voiceagent.throttling import SettingsRateThrottle


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


# --- The prototype's /api/... contracts (camelCase input) ----------------------------------


def _bases(request: Request) -> dict[str, str]:
    """Where the browser reaches us: the simulated agent's URL and our webhook are built from it."""
    http_base = request.build_absolute_uri("/").rstrip("/")
    ws_base = ("wss://" if request.is_secure() else "ws://") + request.get_host()
    return {"http_base": http_base, "ws_base": ws_base}


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
            **_bases(request),
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
            session, credential = services.session_connect(
                session=session, text_only=fields["textOnly"], **_bases(request)
            )
            credential = credential.as_response()
        else:
            throttle_session_create(self, request)
            session, credential, _ = services.session_start(
                user=request.user,
                customer_id=fields.get("customerId") or f"user-{request.user.pk}",
                agent_type=fields["agentType"],
                text_only=fields["textOnly"],
                **_bases(request),
            )
        return Response({**credential, "sessionId": str(session.pk)}, status=status.HTTP_201_CREATED)
