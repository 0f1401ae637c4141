"""The simulated agent's WebSocket route (voiceagent/asgi.py routes it only when this app is installed)."""

from __future__ import annotations

from django.urls import path

from elevenlabs.simulator.consumers import SimulatedAgentConsumer
from elevenlabs.simulator.signed_urls import SIMULATOR_PATH

websocket_urlpatterns = [
    path(SIMULATOR_PATH, SimulatedAgentConsumer.as_asgi(), name="simulated-agent"),
]
