from django.apps import AppConfig


class ElevenLabsConfig(AppConfig):
    name = "elevenlabs"
    label = "elevenlabs"
    verbose_name = "ElevenLabs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from elevenlabs import checks  # noqa: F401  (registers the configuration check)
