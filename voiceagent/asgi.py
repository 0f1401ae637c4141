"""ASGI entry point: HTTP through Django, WebSocket through Channels (the simulated agent)."""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceagent.settings")

from voiceagent.config import ConfigurationError  # noqa: E402

try:
    from django.core.asgi import get_asgi_application

    django_asgi_app = get_asgi_application()
except ConfigurationError as exc:
    sys.stderr.write(f"Configuration error: {exc}\n")
    raise SystemExit(2) from None

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from elevenlabs.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
