"""Ring the simulated agent's phone: the whole inbound loop against this server, offline.

    manage.py simulate_inbound_call --from +15551234567 [--agent support]

It asks our conversation-init webhook at PUBLIC_BASE_URL (with ELEVENLABS_TOOLS_TOKEN), holds a
scripted conversation that calls the customer_history tool, and sends the signed post-call webhook.
The server must be running.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from elevenlabs.simulator.agents import AGENTS
from elevenlabs.simulator.inbound import AGENT_NUMBER, SimulatedCallFailed, simulator_inbound_call
from voiceagent.errors import ApplicationError


class Command(BaseCommand):
    help = "Simulate an inbound phone call to the simulated agent, through this server's own webhooks and tools."

    def add_arguments(self, parser):
        parser.add_argument(
            "--from",
            dest="caller_id",
            required=True,
            help='The caller\'s number in E.164 (+15551234567); "" or "anonymous" for a withheld number.',
        )
        parser.add_argument("--agent", choices=sorted(AGENTS), default="support", help="Which agent answers.")
        parser.add_argument("--to", dest="called_number", default=AGENT_NUMBER, help="The number dialled.")
        parser.add_argument("--base-url", help="Where the server is (default: PUBLIC_BASE_URL).")

    def handle(self, *args, caller_id: str, agent: str, called_number: str, base_url: str | None, **options):
        try:
            call = simulator_inbound_call(
                caller_id=caller_id, agent_type=agent, called_number=called_number, base_url=base_url
            )
        except (SimulatedCallFailed, ApplicationError) as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:  # nothing listening there
            raise CommandError(f"The server did not answer: {exc}") from exc
        history = call.customer_history.get("calls", [])
        self.stdout.write(f"session {call.session_id}")
        self.stdout.write(f"call_sid {call.call_sid}")
        self.stdout.write(f"conversation {call.conversation_id}")
        self.stdout.write(f"customer_history: {len(history)} earlier call(s)")
        if not call.webhook_delivered:
            raise CommandError("The post-call webhook was not delivered (see the log); reconcile_sessions fetches it.")
        self.stdout.write(self.style.SUCCESS("post-call webhook delivered"))
