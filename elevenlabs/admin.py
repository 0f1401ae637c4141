"""Operators' read-only view of the webhook ledger."""

from __future__ import annotations

from django.contrib import admin

from elevenlabs.models import WebhookDelivery
from sessions.admin import session_admin_link
from voiceagent.admin_display import pretty_json

PAYLOAD_PREVIEW_CHARS = 20_000


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the service (the ledger, the simulator's conversations); operators read them."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["event_type", "conversation_id", "received_at", "outcome", "session_link", "error"]
    list_filter = ["event_type", "outcome"]
    search_fields = ["conversation_id"]
    date_hierarchy = "received_at"
    fields = [
        "event_type",
        "outcome",
        "conversation_id",
        "agent_id",
        "session_link",
        "received_at",
        "processed_at",
        "event_timestamp",
        "signature_timestamp",
        "body_bytes",
        "body_sha256",
        "error",
        "payload_pretty",
    ]
    readonly_fields = fields

    @admin.display(description="session", ordering="session")
    def session_link(self, delivery: WebhookDelivery) -> str:
        return session_admin_link(delivery.session_id)

    @admin.display(description="payload")
    def payload_pretty(self, delivery: WebhookDelivery) -> str:
        return pretty_json(delivery.payload, limit=PAYLOAD_PREVIEW_CHARS)
