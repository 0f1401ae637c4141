from django.apps import AppConfig


class VoiceSessionsConfig(AppConfig):
    # django.contrib.sessions owns the label "sessions".
    name = "sessions"
    label = "voice_sessions"
    verbose_name = "Voice sessions"
    default_auto_field = "django.db.models.BigAutoField"
