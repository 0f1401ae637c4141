"""How the API's answers are rendered: which renderer a request gets, and the browsable pages' policy.

Both are named in REST_FRAMEWORK (settings.py). This module imports no DRF view: DRF resolves
the renderer classes while ``rest_framework.views`` is being imported.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.csp import CSP, build_policy
from rest_framework import renderers
from rest_framework.negotiation import DefaultContentNegotiation


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, with the API's everyday question answered before the Accept header is parsed.

    Clients of the API send no Accept, ``*/*`` or exactly the first renderer's type (JSON): DRF's
    parse of the header then always chooses the first renderer with its plain media type. That
    parse cost 4 % of a session create's CPU (issue 10). Anything else (a browser's list, a
    ``?format=``, parameters, an empty header) still goes through DRF's own negotiation.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        first = renderers[0]
        if (
            not format_suffix
            and request.META.get("HTTP_ACCEPT", "*/*") in ("*/*", first.media_type)
            and not (self.settings.URL_FORMAT_OVERRIDE and self.settings.URL_FORMAT_OVERRIDE in request.query_params)
        ):
            return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    """DRF's HTML pages carry inline styles and event handlers: they get a policy of their own.

    Everything else keeps the strict policy; these pages are for logged-in developers and show
    only what the JSON shows. The renderer is where HTML is chosen for a request, so it sets the
    header itself: Django's CSP middleware leaves a Content-Security-Policy that a response
    already carries.
    """

    # A nonce would switch 'unsafe-inline' off, so this policy has none.
    policy = {
        **settings.SECURE_CSP,
        "script-src": [CSP.SELF, CSP.UNSAFE_INLINE],
        "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    }

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None:
            response.headers[CSP.HEADER_ENFORCE] = build_policy(self.policy)
        return super().render(data, accepted_media_type, renderer_context)
