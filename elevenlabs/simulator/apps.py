from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    name = "elevenlabs.simulator"
    label = "simulator"
    verbose_name = "Simulated agent"
    default_auto_field = "django.db.models.BigAutoField"
