"""Operators' view of sessions: filters, search, the timeline, post-call data readable."""

from __future__ import annotations

import json
import uuid

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from rest_framework.authtoken.admin import TokenAdmin as DrfTokenAdmin
from rest_framework.authtoken.models import TokenProxy

from sessions.models import ApiToken, Callback, CallbackStatus, EndReason, VoiceSession
from sessions.selectors import session_timeline
from sessions.services.callbacks import callback_mark_done
from sessions.services.lifecycle import session_end
from voiceagent.admin_display import pretty_json, transcript_table


def session_admin_link(session_id) -> str:
    if not session_id:
        return "-"
    url = reverse("admin:voice_sessions_voicesession_change", args=[session_id])
    return format_html('<a href="{}">{}</a>', url, session_id)


class CallbackInline(admin.TabularInline):
    """The follow-ups the agent promised during the session; marked done from the callbacks' list."""

    model = Callback
    extra = 0
    can_delete = False
    fields = ["requested_time", "phone_number", "reason", "status", "done_at", "created_at"]
    readonly_fields = fields
    ordering = ["requested_time", "id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(VoiceSession)
class VoiceSessionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "customer_id",
        "agent_type",
        "status",
        "call_successful",
        "duration",
        "cost",
        "simulation",
    ]
    list_filter = ["status", "call_successful", "agent_type", "direction", "simulation", "created_at"]
    search_fields = ["customer_id", "conversation_id", "call_sid"]
    date_hierarchy = "created_at"
    list_select_related = ["created_by"]
    inlines = [CallbackInline]
    actions = ["end_selected"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "status",
                    "simulation",
                    "customer_id",
                    "agent_type",
                    "agent_id",
                    "direction",
                    "locale",
                    "connection_type",
                    "conversation_id",
                    "phone_number",
                    "call_sid",
                    "created_by",
                ]
            },
        ),
        ("Times", {"fields": ["created_at", "started_at", "ended_at", "updated_at", "end_reason"]}),
        ("Failure", {"fields": ["failure_code", "failure_message", "upstream_status"]}),
        (
            "Post-call",
            {
                "fields": [
                    "post_call_received_at",
                    "pruned_at",
                    "call_successful",
                    "summary_title",
                    "transcript_summary",
                    "call_duration_secs",
                    "cost",
                    "main_language",
                    "termination_reason",
                    "transcript_readable",
                    "analysis_readable",
                    "call_metadata_readable",
                    "recording",
                    "dynamic_variables",
                ]
            },
        ),
        ("Timeline", {"fields": ["timeline"]}),
    ]

    @admin.display(description="timeline")
    def timeline(self, session: VoiceSession) -> str:
        # The creation is read from the session itself (sessions.selectors.creation_event), so the
        # timeline is shown from the selector rather than as an inline of the stored rows.
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    event.created_at,
                    event.kind,
                    event.from_status or "-",
                    event.to_status or "-",
                    format_html("<code>{}</code>", json.dumps(event.payload, ensure_ascii=False))
                    if event.payload
                    else "-",
                )
                for event in session_timeline(session)
            ),
        )
        head = "<tr><th>at</th><th>kind</th><th>from</th><th>to</th><th>payload</th></tr>"
        return format_html("<table>{}{}</table>", mark_safe(head), rows)  # noqa: S308 - a constant

    def get_readonly_fields(self, request, obj=None):
        # Everything is a record of what happened: operators read it, services write it.
        return [f for section in self.fieldsets for f in section[1]["fields"]]

    def has_add_permission(self, request) -> bool:
        return False

    def get_search_results(self, request, queryset, search_term):
        # A session id is matched exactly, only when the term is a UUID.
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        try:
            session_id = uuid.UUID(search_term.strip())
        except ValueError:
            return results, may_have_duplicates
        return results | queryset.filter(pk=session_id), may_have_duplicates

    @admin.display(description="duration", ordering="call_duration_secs")
    def duration(self, session: VoiceSession) -> str | None:
        """m:ss, as a call's length is read; None shows the admin's "-"."""
        secs = session.call_duration_secs
        return None if secs is None else f"{secs // 60}:{secs % 60:02d}"

    @admin.display(description="transcript")
    def transcript_readable(self, session: VoiceSession) -> str:
        return transcript_table(session.transcript)

    @admin.display(description="analysis")
    def analysis_readable(self, session: VoiceSession) -> str:
        return pretty_json(session.analysis)

    @admin.display(description="call metadata")
    def call_metadata_readable(self, session: VoiceSession) -> str:
        return pretty_json(session.call_metadata)

    @admin.display(description="recording")
    def recording(self, session: VoiceSession) -> str:
        # Through the API's audio endpoint: media files are not served publicly, and it lets the player seek.
        if not session.audio:
            return "-"
        url = reverse("session-audio", args=[session.pk])
        return format_html(
            '<audio controls preload="none" src="{}"></audio><br><a href="{}">{}</a>',
            url,
            url,
            session.recording_filename,
        )

    @admin.action(description="End the selected sessions")
    def end_selected(self, request, queryset) -> None:
        ended = 0
        for session in queryset:
            if not session.is_terminal:
                session_end(session=session, reason=EndReason.OPERATOR)
                ended += 1
        self.message_user(request, f"Ended {ended} session(s); the others had already finished.", messages.SUCCESS)


class CallbackStatusFilter(admin.SimpleListFilter):
    """Open callbacks first: the list is an operator's to-do list, so it opens on what is left to do."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [*CallbackStatus.choices, ("all", "All")]

    def choices(self, changelist):
        for value, label in self.lookup_choices:
            yield {
                "selected": (self.value() or CallbackStatus.OPEN) == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request, queryset):
        wanted = self.value() or CallbackStatus.OPEN
        return queryset if wanted == "all" else queryset.filter(status=wanted)


@admin.register(Callback)
class CallbackAdmin(admin.ModelAdmin):
    list_display = ["requested_time", "customer_id", "phone_number", "reason", "status", "session_link", "created_at"]
    list_filter = [CallbackStatusFilter]
    search_fields = ["customer_id", "phone_number"]
    list_select_related = ["session"]
    actions = ["mark_done"]
    fields = [
        "session_link",
        "customer_id",
        "phone_number",
        "requested_time",
        "reason",
        "status",
        "created_at",
        "done_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False  # the agent schedules them (the schedule_callback tool)

    @admin.display(description="session", ordering="session")
    def session_link(self, callback: Callback) -> str:
        return session_admin_link(callback.session_id)

    @admin.action(description="Mark the selected callbacks done")
    def mark_done(self, request, queryset) -> None:
        done = sum(callback_mark_done(callback=callback) for callback in queryset.select_related("session"))
        self.message_user(request, f"Marked {done} callback(s) done; the others were done already.", messages.SUCCESS)


# --- API tokens: the key is shown once, when it is made ------------------------------------------

admin.site.unregister(TokenProxy)


@admin.register(ApiToken)
class ApiTokenAdmin(DrfTokenAdmin):
    """DRF's token admin listed every key in full; here a key is a secret shown once, on creation."""

    list_display = ("masked_key", "user", "created")

    @admin.display(description="key")
    def masked_key(self, token) -> str:
        return f"{token.key[:4]}…"

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(
            request,
            f"API token for {obj.user}: {obj.key} — copy it now; it is not shown again. "
            "Send it as the header 'Authorization: Token <key>'.",
            messages.WARNING,
        )
        return super().response_add(request, obj, post_url_continue)
