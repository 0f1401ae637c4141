from __future__ import annotations

from django.urls import path

from elevenlabs import apis, views

urlpatterns = [
    path("elevenlabs/webhook", views.webhook, name="elevenlabs-webhook"),
    path("elevenlabs/conversation-init", apis.ConversationInitApi.as_view(), name="elevenlabs-conversation-init"),
    path("elevenlabs/tools/<str:name>", apis.ToolCallApi.as_view(), name="elevenlabs-tool"),
    path("api/voice/sessions", apis.StartSessionApi.as_view(), name="start-session"),
    path("api/elevenlabs", apis.ElevenLabsActionApi.as_view(), name="elevenlabs-action"),
]
