"""WSGI entry point (nothing serves it today: uvicorn and runserver both use asgi.py).

Under WSGI the body stays in the socket until read, and Django reads no more than the
declared Content-Length, so refusing a declared length over the route's cap is the
whole guard; the webhook view checks its headers before it reads the body.
"""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from voiceagent.bodylimit import BodyLimits, BodyLimitWSGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceagent.settings")
application = BodyLimitWSGI(
    get_wsgi_application(),
    limits=BodyLimits(settings.API_MAX_BODY_BYTES, settings.REQUEST_BODY_LIMITS),
)
