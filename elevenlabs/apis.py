"""The ElevenLabs-shaped endpoints of the prototype: thin adapters over the start flow.

`POST /api/voice/sessions` and `POST /api/elevenlabs` create sessions through the same domain
service as `POST /voice/sessions` (see elevenlabs.start), then mint and bind a conversation.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from elevenlabs.serializers import ElevenLabsActionInput, StartSessionInput
from elevenlabs.start import session_connect, session_start
from sessions.selectors import session_visible_to
from sessions.serializers import session_output
from sessions.services.lifecycle import session_end
from sessions.throttles import throttle_session_create


class StartSessionApi(APIView):
    """`POST /api/voice/sessions`: create a session and mint its credential in one round trip."""

    @extend_schema(request=StartSessionInput, responses={201: dict})
    def post(self, request: Request) -> Response:
        throttle_session_create(self, request)
        data = StartSessionInput(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key", "").strip()[:128] or None
        started = session_start(user=request.user, idempotency_key=key, **data.validated_data)
        body = {
            "backend_session": session_output(started.session),
            "elevenlabs_conversation": started.conversation,
            "agent_type": started.session.agent_type,
        }
        return Response(body, status=status.HTTP_200_OK if started.replayed else status.HTTP_201_CREATED)


class ElevenLabsActionApi(APIView):
    """`POST /api/elevenlabs`: start_conversation (a credential) or end_conversation."""

    @extend_schema(request=ElevenLabsActionInput, responses=dict)
    def post(self, request: Request) -> Response:
        data = ElevenLabsActionInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        if fields["action"] == "end_conversation":
            session = session_end(session=session_visible_to(request.user, fields["session_id"]))
            return Response({"success": True, "sessionId": str(session.pk), "status": session.status})

        if "session_id" in fields:
            session = session_visible_to(request.user, fields["session_id"])
            if "agent_type" in fields and fields["agent_type"] != session.agent_type:
                raise ValidationError({"agentType": f"The session is a {session.agent_type} session."})
            connected = session_connect(session=session, text_only=fields["text_only"])
            session, credential = connected.session, connected.as_response()
        else:
            throttle_session_create(self, request)
            started = session_start(
                user=request.user,
                customer_id=fields.get("customer_id") or f"user-{request.user.pk}",
                agent_type=fields["agent_type"],
                text_only=fields["text_only"],
            )
            session, credential = started.session, started.conversation
        return Response({**credential, "sessionId": str(session.pk)}, status=status.HTTP_201_CREATED)
