"""The /voice/sessions API. Views parse, authorise and call sessions.services."""

from __future__ import annotations

import logging

from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sessions.analytics import sessions_analytics
from sessions.models import VoiceSession
from sessions.selectors import SessionFilter, session_visible_to, sessions_visible_to
from sessions.serializers import (
    AnalyticsOutput,
    AnalyticsQueryInput,
    SessionCreateInput,
    SessionDetailOutput,
    SessionEndInput,
    SessionEventInput,
    SessionOutput,
    session_detail_output,
    session_output,
)
from sessions.services.client_events import session_client_event
from sessions.services.lifecycle import session_create, session_end
from sessions.throttles import throttle_session_create
from voiceagent.errors import ApplicationError
from voiceagent.ranged_files import stored_file_response

logger = logging.getLogger("voiceagent.sessions")


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
        session = session_create(user=request.user, **data.validated_data)
        return Response(session_output(session), status=status.HTTP_201_CREATED)


class SessionDetailApi(APIView):
    @extend_schema(responses=SessionDetailOutput)
    def get(self, request: Request, session_id) -> Response:
        session = session_visible_to(request.user, session_id, with_timeline=True)
        return Response(session_detail_output(session))


class SessionEndApi(APIView):
    @extend_schema(request=SessionEndInput, responses=SessionOutput)
    def put(self, request: Request, session_id) -> Response:
        session = session_visible_to(request.user, session_id)
        data = SessionEndInput(data=request.data)
        data.is_valid(raise_exception=True)
        session = session_end(session=session, reason=data.validated_data["reason"])
        return Response(session_output(session))

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
        session = session_client_event(session=session, event_type=event_type, data=fields)
        return Response(session_output(session))


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


class AnalyticsApi(APIView):
    """`GET /api/analytics`: counts, outcomes, durations and cost of a period's sessions (staff: everyone's)."""

    @extend_schema(parameters=[AnalyticsQueryInput], responses=AnalyticsOutput)
    def get(self, request: Request) -> Response:
        query = AnalyticsQueryInput(data=request.query_params)
        query.is_valid(raise_exception=True)
        analytics = sessions_analytics(user=request.user, filters=query.validated_data["filters"])
        return Response(AnalyticsOutput(analytics).data)
