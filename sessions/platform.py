"""What the domain needs to know from the agent platform, without knowing which platform it is.

Sessions run on an agent platform (ElevenLabs, or the simulated agent standing in for it) that
the domain never imports: the project names it in the ``VOICE_AGENT_PLATFORM`` setting, a dotted
path loaded like Django's own pluggable backends (EMAIL_BACKEND, STORAGES), and the domain asks
it through :class:`AgentPlatform`.
"""

from __future__ import annotations

from functools import cache
from typing import Protocol

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string


class AgentPlatform(Protocol):
    def simulation_by_default(self) -> bool:
        """Whether a session that does not ask runs against the simulated agent."""

    def may_claim(self, *, session, conversation_id: str) -> bool:
        """Whether an unbound ``session`` may take ``conversation_id`` that its client reports."""

    def conversation_claimed(self, *, session) -> None:
        """``session`` now holds its conversation: whatever waited for it may be applied."""


class NoPlatform:
    """No platform configured: nothing simulated, nothing waiting, every claim judged by the domain alone."""

    def simulation_by_default(self) -> bool:
        return False

    def may_claim(self, *, session, conversation_id: str) -> bool:
        return True

    def conversation_claimed(self, *, session) -> None:
        return None


@cache
def agent_platform() -> AgentPlatform:
    path = getattr(settings, "VOICE_AGENT_PLATFORM", "")
    return import_string(path)() if path else NoPlatform()


def session_runs_simulated(requested: bool) -> bool:
    """The one place that decides whether a new session is simulated: when asked, or by the platform's default."""
    return requested or agent_platform().simulation_by_default()


@receiver(setting_changed)
def _forget_platform(*, setting: str, **kwargs) -> None:
    if setting == "VOICE_AGENT_PLATFORM":
        agent_platform.cache_clear()
