"""Starting a session's conversation: create it, mint its credential (or dial), bind the conversation.

``POST /api/voice/sessions`` and ``POST /api/elevenlabs`` call this; the session itself is made by
the same domain service as ``POST /voice/sessions`` (sessions.services.lifecycle.session_create).
Real and simulated agents take the same path: only the credential comes from elsewhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError

from elevenlabs import client as elevenlabs_client
from elevenlabs.backends import Credential
from elevenlabs.client import ElevenLabsError
from elevenlabs.credentials import agent_id_for, credential_mint, resolve_connection_type
from sessions.errors import InvalidTransition, SessionError
from sessions.models import ConnectionType, Direction, Status, VoiceSession
from sessions.platform import session_runs_simulated
from sessions.serializers import session_output
from sessions.services.lifecycle import (
    session_activate,
    session_create,
    session_fail,
    session_mark_connecting,
)
from voiceagent.errors import ApplicationError
from voiceagent.logging import session_context
from voiceagent.public_url import require_public_base_url

logger = logging.getLogger("voiceagent.elevenlabs.start")


class StartFailed(ApplicationError):
    """ElevenLabs refused or failed while starting; the session is kept, marked failed with the reason.

    Answered with ElevenLabs' own status, code and message, and the session beside the error.
    """

    def __init__(self, session: VoiceSession, error: Exception):
        self.session = session
        self.error = error
        if isinstance(error, ElevenLabsError):
            super().__init__(
                error.message,
                code=error.code,
                status=error.http_status,
                upstream_status=error.status,
                upstream_code=error.upstream_code,
            )
        else:
            super().__init__(
                session.failure_message,
                code="internal_error",
                status=502,
                upstream_status=None,
                upstream_code=None,
            )

    def body(self) -> dict[str, Any]:
        return {**super().body(), "backend_session": session_output(self.session)}


class OutboundUnavailable(SessionError):
    code = "outbound_unavailable"


@dataclass(frozen=True)
class StartResult:
    """A started session and the ``elevenlabs_conversation`` of the start contract; ``replayed`` when an
    Idempotency-Key named a start that had already happened."""

    session: VoiceSession
    conversation: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class Connected:
    session: VoiceSession
    credential: Credential

    def as_response(self) -> dict[str, Any]:
        """The ``elevenlabs_conversation`` of the start contract: the credential, and the session's dynamic
        variables (memory of previous calls among them), which the client holding the credential passes on
        when it opens the conversation: only it can."""
        return {**self.credential.as_response(), "dynamic_variables": self.session.dynamic_variables}


def session_start(
    *,
    user,
    customer_id: str,
    agent_type: str,
    locale: str = "en-US",
    direction: str = Direction.INBOUND,
    dynamic_variables: dict[str, Any] | None = None,
    text_only: bool = False,
    simulation: bool = False,
    phone_number: str = "",
    idempotency_key: str | None = None,
) -> StartResult:
    """Create a session (the same service as ``POST /voice/sessions``) and start its conversation.

    Configuration
    problems raise before anything is stored. When ElevenLabs fails, the
    session is kept, marked failed with the remote status and message, and
    :class:`StartFailed` is raised. A repeated ``idempotency_key`` returns the
    first request's session without starting (or dialling) again.
    """
    simulation = session_runs_simulated(simulation)
    agent_id = agent_id_for(agent_type, simulation=simulation)
    if simulation:
        require_public_base_url()  # before anything is stored
    outbound_call = direction == Direction.OUTBOUND and bool(phone_number)
    if outbound_call:
        _check_outbound_possible(simulation=simulation)

    if idempotency_key:
        replay = _replay(user, idempotency_key)
        if replay is not None:
            return replay
    try:
        session = session_create(
            user=user,
            customer_id=customer_id,
            agent_type=agent_type,
            direction=direction,
            locale=locale,
            simulation=simulation,
            dynamic_variables=dynamic_variables,
            phone_number=phone_number,
            idempotency_key=idempotency_key,
        )
    except IntegrityError:  # the same key raced us: the other request owns the start
        replay = _replay(user, idempotency_key)
        if replay is None:
            raise
        return replay

    if outbound_call:
        session = session_dial(session=session, agent_id=agent_id)
        return StartResult(session=session, conversation=_conversation_without_credential(session))
    connected = session_connect(session=session, agent_id=agent_id, text_only=text_only)
    return StartResult(session=connected.session, conversation=connected.as_response())


def session_connect(*, session: VoiceSession, agent_id: str | None = None, text_only: bool) -> Connected:
    """Mint a credential for a created session and move it to connecting, bound to the conversation the
    credential opens (or to failed, raising :class:`StartFailed`)."""
    if session.status != Status.CREATED:
        raise InvalidTransition(session, Status.CONNECTING)
    if session.simulation:
        require_public_base_url()
    agent_id = agent_id or agent_id_for(session.agent_type, simulation=session.simulation)
    connection_type = resolve_connection_type(text_only=text_only)
    with session_context(session.pk):
        try:
            credential = credential_mint(
                session=session,
                agent_id=agent_id,
                connection_type=connection_type,
                text_only=text_only,
            )
        except Exception as exc:
            raise StartFailed(_fail_from_upstream(session, exc), exc) from exc
    connecting = session_mark_connecting(
        session=session,
        agent_id=agent_id,
        connection_type=credential.connection_type,
        simulation=credential.simulation,
        conversation_id=credential.conversation_id,
        payload={"expires_at": credential.expires_at.isoformat(), "text_only": text_only},
    )
    return Connected(session=connecting, credential=credential)


def session_dial(*, session: VoiceSession, agent_id: str) -> VoiceSession:
    """Start an outbound phone call through ElevenLabs (Twilio or SIP trunk, from settings)."""
    with session_context(session.pk):
        try:
            result = elevenlabs_client.get_client().outbound_call(
                provider=settings.ELEVENLABS_OUTBOUND_PROVIDER,
                agent_id=agent_id,
                agent_phone_number_id=settings.ELEVENLABS_PHONE_NUMBER_ID,
                to_number=session.phone_number,
                conversation_initiation_client_data={
                    "user_id": session.customer_id,
                    "dynamic_variables": session.dynamic_variables,
                },
            )
        except Exception as exc:
            raise StartFailed(_fail_from_upstream(session, exc), exc) from exc
    call_id = result.get("callSid") or result.get("sip_call_id") or ""
    conversation_id = result.get("conversation_id") or None
    session = session_mark_connecting(
        session=session,
        agent_id=agent_id,
        connection_type=ConnectionType.PHONE,
        simulation=False,
        conversation_id=conversation_id,
        payload={
            "provider": settings.ELEVENLABS_OUTBOUND_PROVIDER,
            "call_id": call_id,
            "message": result.get("message", ""),
        },
    )
    if conversation_id:
        # ElevenLabs accepted and is dialling: the conversation exists from here on.
        session = session_activate(session=session, conversation_id=conversation_id)
    return session


def _check_outbound_possible(*, simulation: bool) -> None:
    if simulation:
        raise OutboundUnavailable("Outbound phone calls are not simulated; set ELEVENLABS_API_KEY to place real calls.")
    if not settings.ELEVENLABS_PHONE_NUMBER_ID:
        raise OutboundUnavailable(
            "Outbound calls need ELEVENLABS_PHONE_NUMBER_ID, the id of the agent's phone number in ElevenLabs."
        )


def _conversation_without_credential(session: VoiceSession) -> dict[str, Any]:
    """What was started, as the session records it: for a phone call (nothing to hand a client) and for a
    replayed start (browser credentials are single-use and never stored)."""
    return {
        "connection_type": session.connection_type,
        "agent_id": session.agent_id,
        "conversation_id": session.conversation_id,
        "simulation": session.simulation,
    }


def _replay(user, key: str) -> StartResult | None:
    owner = user if getattr(user, "is_authenticated", False) else None
    session = VoiceSession.objects.filter(created_by=owner, idempotency_key=key).first()
    if session is None:
        return None
    conversation = {**_conversation_without_credential(session), "replayed": True}
    return StartResult(session=session, conversation=conversation, replayed=True)


def _fail_from_upstream(session: VoiceSession, exc: Exception) -> VoiceSession:
    if isinstance(exc, ElevenLabsError):
        return session_fail(session=session, code=exc.code, message=exc.message, upstream_status=exc.status)
    logger.exception("starting session %s failed", session.pk)
    return session_fail(
        session=session, code="internal_error", message="Starting the conversation failed; see the log."
    )
