"""Who may call the endpoints ElevenLabs calls during a call: the holder of ELEVENLABS_TOOLS_TOKEN.

ElevenLabs sends the header the operator configured for the conversation-initiation webhook and
for each server tool, ``Authorization: Bearer <token>``; we compare it with ELEVENLABS_TOOLS_TOKEN
in constant time. No token configured is the operator's mistake, not the caller's: 503 naming
the variable, so that the call fails loudly rather than running without a customer.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission

from voiceagent.errors import ApplicationError
from voiceagent.parsers import BoundedJSONParser

TOOLS_TOKEN_VARIABLE = "ELEVENLABS_TOOLS_TOKEN"
# request.auth of a request that carried the token: the agent platform, not a user.
ELEVENLABS_PLATFORM = "elevenlabs-platform"


class ToolsTokenMissing(ApplicationError):
    status = 503
    code = "tools_token_missing"

    def __init__(self) -> None:
        super().__init__(
            f"{TOOLS_TOKEN_VARIABLE} is not configured; no call from ElevenLabs is accepted.",
            variable=TOOLS_TOKEN_VARIABLE,
        )


def _digest(value: bytes) -> bytes:
    # Equal-length digests: compare_digest then reveals nothing, not even the token's length.
    return hashlib.sha256(value).digest()


class ToolsTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <ELEVENLABS_TOOLS_TOKEN>``; any other scheme counts as no credential (401)."""

    def authenticate(self, request):
        expected = settings.ELEVENLABS_TOOLS_TOKEN
        if not expected:
            raise ToolsTokenMissing()
        scheme, _, presented = get_authorization_header(request).partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        if not hmac.compare_digest(_digest(presented.strip()), _digest(expected.encode())):
            raise AuthenticationFailed("Invalid token.")
        return AnonymousUser(), ELEVENLABS_PLATFORM

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="elevenlabs"'


class ToolsTokenScheme(OpenApiAuthenticationExtension):
    """The token in the OpenAPI schema (drf-spectacular finds it by its target class)."""

    target_class = ToolsTokenAuthentication
    name = "elevenlabsToolsToken"

    def get_security_definition(self, auto_schema) -> dict:
        return {"type": "http", "scheme": "bearer", "description": f"{TOOLS_TOKEN_VARIABLE}, sent by ElevenLabs."}


class FromElevenLabs(BasePermission):
    def has_permission(self, request, view) -> bool:
        return request.auth == ELEVENLABS_PLATFORM


class ToolsJSONParser(BoundedJSONParser):
    """Their bodies are a few identifiers and a tool's arguments: capped by ELEVENLABS_TOOLS_MAX_BYTES."""

    max_bytes_setting = "ELEVENLABS_TOOLS_MAX_BYTES"
