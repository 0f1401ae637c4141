"""The /voice/sessions API. Views parse, authorise and call sessions.services."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sessions import services
from sessions.models import VoiceSession
from sessions.selectors import SessionFilter, sessions_visible_to
from sessions.serializers import SessionCreateInput, SessionDetailOutput, SessionEndInput, SessionOutput


def get_visible_session(request: Request, session_id) -> VoiceSession:
    # Another user's session answers 404, like a session that does not exist.
    return get_object_or_404(sessions_visible_to(request.user), pk=session_id)


class SessionListCreateApi(generics.ListAPIView):
    serializer_class = SessionOutput
    filterset_class = SessionFilter

    def get_queryset(self):
        return sessions_visible_to(self.request.user)

    @extend_schema(request=SessionCreateInput, responses={201: SessionOutput})
    def post(self, request: Request) -> Response:
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
        session = get_visible_session(request, session_id)
        return Response(SessionDetailOutput(session).data)


class SessionEndApi(APIView):
    @extend_schema(request=SessionEndInput, responses=SessionOutput)
    def put(self, request: Request, session_id) -> Response:
        session = get_visible_session(request, session_id)
        data = SessionEndInput(data=request.data)
        data.is_valid(raise_exception=True)
        session = services.session_end(session=session, reason=data.validated_data["reason"])
        return Response(SessionOutput(session).data)

    @extend_schema(request=SessionEndInput, responses=SessionOutput)
    def post(self, request: Request, session_id) -> Response:
        return self.put(request, session_id)
