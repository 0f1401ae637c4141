"""Is ElevenLabs configured? One answer for /healthz and for start-up (Django's system checks)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

REQUIRED = (
    "ELEVENLABS_API_KEY",
    "ELEVENLABS_SUPPORT_AGENT_ID",
    "ELEVENLABS_SALES_AGENT_ID",
    "ELEVENLABS_WEBHOOK_SECRET",
)
CONSEQUENCES = {
    "ELEVENLABS_SUPPORT_AGENT_ID": "support sessions are refused with a 400",
    "ELEVENLABS_SALES_AGENT_ID": "sales sessions are refused with a 400",
    "ELEVENLABS_WEBHOOK_SECRET": "post-call webhooks are refused with a 503",
}


def simulator_available() -> bool:
    """Whether simulated sessions can run here (SIMULATOR_ENABLED put the simulated agent's backend in settings)."""
    return bool(getattr(settings, "ELEVENLABS_SIMULATOR_BACKEND", ""))


def configuration_status() -> tuple[str, list[str]]:
    """("configured" | "simulation" | "misconfigured", names of the missing variables). Never a value.

    With no API key the simulated agent stands in, unless it is left out: then nothing can start.
    """
    missing = [name for name in REQUIRED if not getattr(settings, name)]
    if not settings.ELEVENLABS_API_KEY:
        return ("simulation" if simulator_available() else "misconfigured"), missing
    return ("misconfigured" if missing else "configured"), missing


@checks.register("elevenlabs")
def check_elevenlabs_configuration(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    mode, missing = configuration_status()
    if mode != "misconfigured":
        return []
    if not settings.ELEVENLABS_API_KEY:
        return [
            checks.Warning(
                "ELEVENLABS_API_KEY is not set and the simulated agent is left out (SIMULATOR_ENABLED=false): "
                "every session start is refused.",
                hint="Set ELEVENLABS_API_KEY (see .env.example), or SIMULATOR_ENABLED=true to simulate.",
                id="elevenlabs.W010",
            )
        ]
    return [
        checks.Warning(
            f"ELEVENLABS_API_KEY is set but {name} is not: {CONSEQUENCES[name]}.",
            hint="Set it in the environment or .env (see .env.example), or unset the key to simulate.",
            id=f"elevenlabs.W00{REQUIRED.index(name)}",  # fixed per variable, so it can be silenced
        )
        for name in missing
    ]
