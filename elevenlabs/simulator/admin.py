"""Operators' read-only view of the simulated agent's conversations, and a simulated inbound call on demand."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from elevenlabs.admin import ReadOnlyAdmin, session_admin_link
from elevenlabs.simulator.agents import AGENTS
from elevenlabs.simulator.inbound import simulator_inbound_call_in_background
from elevenlabs.simulator.models import SimulatedConversation
from sessions.validators import E164
from voiceagent.admin_display import transcript_table
from voiceagent.public_url import PublicBaseUrlMissing, require_public_base_url


class InboundCallForm(forms.Form):
    caller_id = forms.RegexField(
        regex=E164,
        required=False,
        label="Caller's number",
        help_text="E.164, e.g. +15551234567; leave empty for a withheld number.",
    )
    agent_type = forms.ChoiceField(choices=[(name, name) for name in AGENTS], label="Agent")


@admin.register(SimulatedConversation)
class SimulatedConversationAdmin(ReadOnlyAdmin):
    change_list_template = "admin/simulator/simulatedconversation/change_list.html"
    list_display = ["conversation_id", "agent_type", "status", "session_link", "created_at", "ended_at"]
    list_filter = ["status", "agent_type"]
    search_fields = ["conversation_id"]
    fields = [
        "conversation_id",
        "agent_id",
        "agent_type",
        "status",
        "session_link",
        "text_only",
        "created_at",
        "expires_at",
        "connected_at",
        "ended_at",
        "termination_reason",
        "webhook_sent_at",
        "transcript_pretty",
    ]
    readonly_fields = fields

    @admin.display(description="session", ordering="session")
    def session_link(self, conversation: SimulatedConversation) -> str:
        return session_admin_link(conversation.session_id)

    @admin.display(description="transcript")
    def transcript_pretty(self, conversation: SimulatedConversation) -> str:
        return transcript_table(conversation.transcript)

    def get_urls(self):
        own = [
            path(
                "simulate-inbound-call/",
                self.admin_site.admin_view(self.simulate_inbound_call_view),
                name="simulator_simulate_inbound_call",
            )
        ]
        return own + super().get_urls()

    def simulate_inbound_call_view(self, request):
        """Ring the simulated agent from a number: the call runs in the background, as a caller's would."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = InboundCallForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                base_url = require_public_base_url()
            except PublicBaseUrlMissing as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                caller_id = form.cleaned_data["caller_id"] or "anonymous"
                simulator_inbound_call_in_background(
                    caller_id=caller_id, agent_type=form.cleaned_data["agent_type"], base_url=base_url
                )
                self.message_user(
                    request,
                    f"Calling the simulated {form.cleaned_data['agent_type']} agent from {caller_id}: the session "
                    "appears among the sessions in a moment, and ends with its transcript.",
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:voice_sessions_voicesession_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Simulate an inbound call",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/simulator/simulate_inbound_call.html", context)
