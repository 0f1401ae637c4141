from __future__ import annotations

from django.urls import path

from elevenlabs import views

urlpatterns = [
    path("elevenlabs/webhook", views.webhook, name="elevenlabs-webhook"),
]
