"""WebSocket routes (imported by voiceagent/asgi.py): the simulated agent's ConvAI endpoint."""

from __future__ import annotations

from django.urls import path

from elevenlabs.consumers import SimulatedAgentConsumer
from elevenlabs.simulator import SIMULATOR_PATH

websocket_urlpatterns = [
    path(SIMULATOR_PATH, SimulatedAgentConsumer.as_asgi(), name="simulated-agent"),
]
