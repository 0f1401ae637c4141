"""The ElevenLabs-shaped endpoints: thin adapters over the start flow, and what ElevenLabs calls during a call.

`POST /api/voice/sessions` and `POST /api/elevenlabs` create sessions through the same domain
service as `POST /voice/sessions` (see elevenlabs.start), then mint and bind a conversation.
`POST /elevenlabs/conversation-init` (elevenlabs.inbound) and `POST /elevenlabs/tools/<name>`
(elevenlabs.tools) are called by ElevenLabs itself, with the bearer token of elevenlabs.tools_auth.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from elevenlabs.inbound import inbound_call_answer
from elevenlabs.serializers import ConversationInitInput, ElevenLabsActionInput, StartSessionInput, ToolCallInput
from elevenlabs.start import session_connect, session_start
from elevenlabs.tools import tool_arguments, tool_call, tool_named, tool_session
from elevenlabs.tools_auth import FromElevenLabs, ToolsJSONParser, ToolsTokenAuthentication
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


class CalledByElevenLabs(APIView):
    """An endpoint ElevenLabs calls during a call: its bearer token, a small JSON body, JSON answers."""

    authentication_classes = [ToolsTokenAuthentication]
    permission_classes = [FromElevenLabs]
    parser_classes = [ToolsJSONParser]
    renderer_classes = [JSONRenderer]
    throttle_classes = []


class ConversationInitApi(CalledByElevenLabs):
    """`POST /elevenlabs/conversation-init`: an inbound call is ringing; open its session, tell the agent."""

    @extend_schema(request=ConversationInitInput, responses={200: dict})
    def post(self, request: Request) -> Response:
        data = ConversationInitInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(inbound_call_answer(**data.validated_data))


class ToolCallApi(CalledByElevenLabs):
    """`POST /elevenlabs/tools/<name>`: the agent calls a server tool."""

    @extend_schema(request=dict, responses={200: dict})
    def post(self, request: Request, name: str) -> Response:
        tool = tool_named(name)
        envelope = ToolCallInput(data=request.data)
        envelope.is_valid(raise_exception=True)
        session = tool_session(**envelope.validated_data)
        return Response(tool_call(tool=tool, session=session, arguments=tool_arguments(request.data)))
