"""DRF's JSON parser with limits: every JSON API body goes through :func:`loads_bounded`.

DRF's own parser reads the whole stream (Django's DATA_UPLOAD_MAX_MEMORY_SIZE only
guards ``request.body``) and lets ``RecursionError`` escape as a 500; this one reads at
most API_MAX_BODY_BYTES + 1 bytes and answers every refusal as DRF's ParseError (400) with
the refusal's own code (``json_too_deep``, ``invalid_json``, ...), or 413 for a body over the cap.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from voiceagent.bodylimit import RequestBodyTooLarge
from voiceagent.jsonlimits import JsonRejected, loads_bounded


class BoundedJSONParser(JSONParser):
    # The setting that caps the body; a view with a smaller cap of its own uses a subclass naming its setting.
    max_bytes_setting = "API_MAX_BODY_BYTES"

    def parse(self, stream, media_type=None, parser_context=None):
        max_bytes = getattr(settings, self.max_bytes_setting)
        raw = stream.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise RequestBodyTooLarge(max_bytes)
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise ParseError(f"JSON parse error - the body is not {encoding} text.") from None
        try:
            return loads_bounded(text, max_depth=settings.JSON_MAX_DEPTH)
        except JsonRejected as exc:
            raise ParseError(f"JSON parse error - {exc.message}", code=exc.code) from None
