"""ASGI entry point: HTTP through Django on a thread pool, WebSocket through Channels (the simulated agent).

HTTP runs Django's WSGI handler on a fixed pool of HTTP_THREADS threads per worker process
(voiceagent/threaded_wsgi.py), not Django's ASGI handler: under that handler every sync view and
middleware hops to one thread per process and back, which cost 4.3 ms of a 4.7 ms /healthz behind
uvicorn and held the session API to a tenth of a FastAPI reference (issue 10; bench/vs_reference.py).
The pool also bounds the database connections a worker holds, so they can persist between requests.

HTTP passes the body-limit guard first: Django would otherwise spool a body of any size
to disk before a view could refuse it. The webhook's headers are checked there too, so
an unsigned or stale delivery is refused before its body is read.
"""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceagent.settings")

from voiceagent.config import ConfigurationError  # noqa: E402

try:
    from django.core.wsgi import get_wsgi_application

    django_wsgi_app = get_wsgi_application()
except ConfigurationError as exc:
    sys.stderr.write(f"Configuration error: {exc}\n")
    raise SystemExit(2) from None

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.apps import apps  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402

from elevenlabs.views import webhook_refusal_before_body  # noqa: E402
from voiceagent.bodylimit import BodyLimitASGI, BodyLimits  # noqa: E402
from voiceagent.threaded_wsgi import ThreadedWSGI  # noqa: E402

websocket_urlpatterns = []
if apps.is_installed("elevenlabs.simulator"):
    from elevenlabs.simulator.routing import websocket_urlpatterns  # noqa: E402


async def refuse_websocket(scope, receive, send):
    """Any other WebSocket path: refused at the handshake (403), not a traceback from an unmatched route."""
    await receive()  # websocket.connect
    await send({"type": "websocket.close", "code": 1008})


application = ProtocolTypeRouter(
    {
        "http": BodyLimitASGI(
            ThreadedWSGI(django_wsgi_app, threads=settings.HTTP_THREADS),
            limits=BodyLimits(settings.API_MAX_BODY_BYTES, settings.REQUEST_BODY_LIMITS),
            before_body={"/elevenlabs/webhook": webhook_refusal_before_body},
        ),
        "websocket": URLRouter([*websocket_urlpatterns, re_path(r"", refuse_websocket)]),
    }
)
