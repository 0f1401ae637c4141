"""The simulated agent's credential: a signed WebSocket URL, valid as long as ElevenLabs' and usable once.

Minting creates the conversation, waiting for its client; the socket
(:mod:`elevenlabs.simulator.consumers`) verifies the URL and claims the
conversation with one conditional UPDATE, so a URL opens one conversation.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from urllib.parse import parse_qs, urlencode

from django.utils import timezone
from django.utils.crypto import salted_hmac

from elevenlabs.backends import SIGNED_URL_LIFETIME
from elevenlabs.simulator.agents import simulated_agent
from elevenlabs.simulator.models import SimulatedConversation
from voiceagent.public_url import require_public_base_url, websocket_base

SIMULATOR_PATH = "simulator/v1/convai/conversation"

SIGNED_PARAMS = ("agent_id", "conversation_id", "expires")
SIGNATURE_PARAM = "conversation_signature"
_SIGNATURE_SALT = "voiceagent.elevenlabs.simulator.signed-url.v1"


class SignedUrlRefused(Exception):
    """A connection attempt that must be refused (closed with 1008 and ``reason``)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _signature(agent_id: str, conversation_id: str, expires: str) -> str:
    # JSON of the list keeps the fields apart whatever characters they hold.
    message = json.dumps([agent_id, conversation_id, expires])
    return salted_hmac(_SIGNATURE_SALT, message, algorithm="sha256").hexdigest()


def simulator_mint_signed_url(*, session, agent_id: str, agent_type: str, text_only: bool) -> dict:
    """Create a conversation waiting for its client and the signed URL that opens it.

    The URL and the post-call webhook's target are on PUBLIC_BASE_URL (:func:`require_public_base_url`).
    Returns ``{"signed_url", "conversation_id", "expires_at"}``.
    """
    simulated_agent(agent_type)
    http_base = require_public_base_url()
    ws_base = websocket_base(http_base)

    conversation_id = f"sim_conv_{uuid.uuid4().hex}"
    # Whole seconds: the URL carries the expiry, and the row must agree with it exactly.
    expires_at = (timezone.now() + SIGNED_URL_LIFETIME).replace(microsecond=0)
    expires = str(int(expires_at.timestamp()))
    SimulatedConversation.objects.create(
        conversation_id=conversation_id,
        agent_id=agent_id,
        agent_type=agent_type,
        session=session,
        expires_at=expires_at,
        text_only=text_only,
        http_base=http_base,
    )
    query = urlencode(
        {
            "agent_id": agent_id,
            "conversation_id": conversation_id,
            "expires": expires,
            SIGNATURE_PARAM: _signature(agent_id, conversation_id, expires),
        }
    )
    return {
        "signed_url": f"{ws_base}/{SIMULATOR_PATH}?{query}",
        "conversation_id": conversation_id,
        "expires_at": expires_at,
    }


def simulator_verify_signed_url(query_string: str | bytes, *, now: float | None = None) -> tuple[str, str]:
    """Check a signed URL's query string; return its ``(agent_id, conversation_id)``.

    Only the signed parameters are looked at: clients append their own
    (``source=js_sdk&version=...``). Each signed parameter must appear exactly once,
    so that nobody can smuggle in a second value the server might read instead.
    Raises :class:`SignedUrlRefused`.
    """
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    params = parse_qs(query_string, keep_blank_values=True)
    values: dict[str, str] = {}
    for name in (*SIGNED_PARAMS, SIGNATURE_PARAM):
        found = params.get(name, [])
        if len(found) != 1 or not found[0]:
            raise SignedUrlRefused("Invalid conversation signature")
        values[name] = found[0]
    expected = _signature(values["agent_id"], values["conversation_id"], values["expires"])
    if not hmac.compare_digest(expected.encode(), values[SIGNATURE_PARAM].encode()):
        raise SignedUrlRefused("Invalid conversation signature")
    if not values["expires"].isdigit() or int(values["expires"]) <= (time.time() if now is None else now):
        raise SignedUrlRefused("Signed URL has expired")
    return values["agent_id"], values["conversation_id"]


def simulator_claim_conversation(*, agent_id: str, conversation_id: str) -> SimulatedConversation:
    """Move the conversation from initiated to in-progress: a signed URL opens one conversation, once.

    One conditional UPDATE decides, so two sockets racing with the same URL get one winner.
    """
    now = timezone.now()
    claimed = SimulatedConversation.objects.filter(
        pk=conversation_id,
        agent_id=agent_id,
        status=SimulatedConversation.Status.INITIATED,
        expires_at__gt=now,
    ).update(status=SimulatedConversation.Status.IN_PROGRESS, connected_at=now)
    conversation = SimulatedConversation.objects.filter(pk=conversation_id).first()
    if claimed == 1 and conversation is not None:
        return conversation
    if conversation is None or conversation.agent_id != agent_id:
        raise SignedUrlRefused("Unknown conversation")
    if conversation.status != SimulatedConversation.Status.INITIATED:
        raise SignedUrlRefused("Signed URL has already been used")
    raise SignedUrlRefused("Signed URL has expired")


def simulator_open_conversation(*, query_string: str | bytes) -> SimulatedConversation:
    """Verify a connection's signed URL and claim its conversation. Raises :class:`SignedUrlRefused`."""
    agent_id, conversation_id = simulator_verify_signed_url(query_string)
    return simulator_claim_conversation(agent_id=agent_id, conversation_id=conversation_id)
