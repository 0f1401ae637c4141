"""The simulated agent's Prometheus metrics (plumbing: voiceagent/metrics.py).

- ``voiceagent_simulator_conversations_started_total{agent_type}``: WebSocket conversations the
  simulated agent opened (a signed URL accepted);
- ``voiceagent_simulator_conversations_ended_total{agent_type, webhook}``: conversations it ended
  and stored, with whether its post-call webhook was delivered (``delivered`` or ``failed``).
"""

from __future__ import annotations

from prometheus_client import Counter

CONVERSATIONS_STARTED = Counter(
    "voiceagent_simulator_conversations_started",
    "Conversations the simulated agent opened, by agent type.",
    ["agent_type"],
)
CONVERSATIONS_ENDED = Counter(
    "voiceagent_simulator_conversations_ended",
    "Conversations the simulated agent ended and stored, by agent type and whether its post-call webhook "
    "was delivered.",
    ["agent_type", "webhook"],
)
