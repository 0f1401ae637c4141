"""Bounded JSON: depth, size, item count and number limits, checked before a parser builds anything.

Why a scan before the parser: ijson's C backend builds a prefix string as long as the
nesting for every event, so 100,000 levels cost minutes inside one C call that never
releases the GIL (the worker misses its health check and is killed); the standard
``json`` module raises ``RecursionError`` a few thousand levels down, and anything
deeper than Python's recursion limit later breaks ``json.dumps``, pformat and the
database. :class:`JsonShapeScanner` reads the raw bytes a slice at a time (so no single
call runs long) with only C-speed byte operations per slice: it drops string contents,
keeps the brackets and commas, and refuses the body as soon as it nests deeper or holds
more values than allowed. A body it passes can then be parsed by anything.

:func:`loads_bounded` is that scan plus ``json.loads`` with numbers kept inside what the
database and other JSON readers hold: integers in 64 bits, floats finite, no NaN or
Infinity, and no U+0000 in any string (PostgreSQL's jsonb cannot store it). Use it for
every JSON text that comes from outside: API bodies, WebSocket frames.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

# Slices small enough that one C-level pass over a slice takes well under a millisecond.
SCAN_SLICE_BYTES = 64 * 1024

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_ESCAPE_PAIR = re.compile(rb"\\.", re.DOTALL)
# After escape pairs are gone a string is a quote, anything but a quote, and a quote.
_STRING = re.compile(rb'"[^"]*"')
_NOT_QUOTE_OR_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{},')
_OBJECTS_AS_ARRAYS = bytes.maketrans(b"{}", b"[]")
_LEVEL_STEP = [0] * 256
_LEVEL_STEP[ord("[")] = 1
_LEVEL_STEP[ord("]")] = -1
_NUL_ESCAPE = b"\\u0000"


class JsonRejected(ValueError):
    """The text is not JSON we accept; ``message`` says why in words a caller can act on."""

    def __init__(self, message: str, *, code: str):
        self.message = message
        self.code = code
        super().__init__(message)


def too_deep(max_depth: int) -> JsonRejected:
    return JsonRejected(f"JSON nested deeper than {max_depth} levels.", code="json_too_deep")


class JsonShapeScanner:
    """Depth and value count of JSON text fed in chunks, without parsing it.

    ``feed`` raises :class:`JsonRejected` as soon as the text nests deeper than
    ``max_depth`` or holds more than ``max_items`` values (None: no item limit).
    Text that is not JSON at all is not this scanner's business: the parser that
    follows refuses it, and it never gets further than the scan has vouched for.
    ``saw_nul_escape`` tells whether ``\\u0000`` may occur (it can be a false alarm:
    an escaped backslash followed by "u0000").
    """

    def __init__(self, *, max_depth: int, max_items: int | None = None):
        self.max_depth = max_depth
        self.max_items = max_items
        self.depth = 0
        self.items = 0
        self.saw_nul_escape = False
        self._in_string = False
        self._carry = b""  # a backslash whose escaped character is in the next chunk
        self._tail = b""  # the end of the last chunk, so "\u0000" split across chunks is seen

    def feed(self, chunk: bytes) -> None:
        if self._in_string and not self._carry and b'"' not in chunk and b"\\" not in chunk:
            self._check_nul(chunk)
            return  # the middle of a long string (base64 audio): nothing to see
        for start in range(0, len(chunk), SCAN_SLICE_BYTES):
            self._feed_slice(chunk[start : start + SCAN_SLICE_BYTES])

    def _check_nul(self, chunk: bytes) -> None:
        if self.saw_nul_escape:
            return
        joined = self._tail + chunk[:8]
        # The escape starts with a backslash: looking for that is a memchr, the whole escape is not.
        if (b"\\" in joined and _NUL_ESCAPE in joined) or (b"\\" in chunk and _NUL_ESCAPE in chunk):
            self.saw_nul_escape = True
        self._tail = chunk[-8:]

    def _feed_slice(self, chunk: bytes) -> None:
        self._check_nul(chunk)
        text = self._carry + chunk
        self._carry = b""
        if b"\\" in text:
            text = _ESCAPE_PAIR.sub(b"", text)
            if text.endswith(b"\\"):  # every other backslash went with its pair
                text, self._carry = text[:-1], b"\\"
        # Only quotes and structure are left; a string's own text (all of a base64 audio) is gone.
        text = text.translate(None, _NOT_QUOTE_OR_STRUCTURE)
        if self._in_string:
            text = b'"' + text
        self._in_string = text.count(b'"') % 2 == 1
        if self._in_string:
            text = text[: text.rindex(b'"')]
        # Two adjacent quotes are an empty string or a string's end and the next one's start: either
        # way nothing structural lies between them, and dropping both keeps every other quote's role.
        text = text.replace(b'""', b"")
        if b'"' in text:  # strings with brackets or commas inside
            text = _STRING.sub(b"", text)
        if not text:
            return
        commas = text.count(b",")
        structure = text.replace(b",", b"").translate(_OBJECTS_AS_ARRAYS)
        opened = structure.count(b"[")
        self.items += commas + opened
        if self.max_items is not None and self.items > self.max_items:
            raise JsonRejected(f"JSON holds more than {self.max_items} values.", code="json_too_many_items")
        if self.depth + opened <= self.max_depth:  # cannot reach the limit within this slice
            self.depth += opened - (len(structure) - opened)
            return
        levels = list(accumulate(map(_LEVEL_STEP.__getitem__, structure), initial=self.depth))
        if max(levels) > self.max_depth:
            raise too_deep(self.max_depth)
        self.depth = levels[-1]


def _int64(text: str) -> int:
    # Checked by length first: int() of a very long digit string is itself slow.
    value = int(text) if len(text) <= 20 else None
    if value is None or not INT64_MIN <= value <= INT64_MAX:
        raise _NumberOutOfRange(text)
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NumberOutOfRange(text)
    return value


def _no_constants(name: str) -> float:
    raise _NumberOutOfRange(name)


class _NumberOutOfRange(ValueError):
    pass


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) below ``value``, keys included as values; iterative, the depth is already bounded."""
    stack = [(path, value)]
    while stack:
        path, value = stack.pop()
        yield path, value
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                yield child, key
                stack.append((child, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))


def path_of_nul(value: Any) -> str | None:
    """Where the first string (or key) containing U+0000 is, "" for the top level; None when there is none."""
    for path, item in _walk(value):
        if isinstance(item, str) and "\x00" in item:
            return path
    return None


def _path_of_number_out_of_range(data: bytes) -> str | None:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    for path, item in _walk(value):
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            return path
        if isinstance(item, float) and not math.isfinite(item):
            return path
    return None


def _where(path: str | None) -> str:
    return f" (at {path})" if path else ""


def loads_bounded(
    text: str | bytes, *, max_depth: int, max_bytes: int | None = None, max_items: int | None = None
) -> Any:
    """``json.loads`` for text from outside, within the limits; raises :class:`JsonRejected`."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if max_bytes is not None and len(data) > max_bytes:
        raise JsonRejected(f"JSON body larger than {max_bytes} bytes.", code="json_too_large")
    scanner = JsonShapeScanner(max_depth=max_depth, max_items=max_items)
    scanner.feed(data)
    try:
        value = json.loads(data, parse_int=_int64, parse_float=_finite_float, parse_constant=_no_constants)
    except _NumberOutOfRange:
        raise JsonRejected(
            "A number is out of range"
            f"{_where(_path_of_number_out_of_range(data))}: integers must fit in 64 bits"
            " (-9223372036854775808 to 9223372036854775807) and numbers must be finite.",
            code="number_out_of_range",
        ) from None
    except RecursionError:  # cannot happen below the scanner's depth; kept as a last line
        raise too_deep(max_depth) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise JsonRejected(f"Body is not valid JSON: {exc}", code="invalid_json") from None
    if scanner.saw_nul_escape:
        path = path_of_nul(value)
        if path is not None:
            raise JsonRejected(
                f"Strings may not contain the NUL character (\\u0000){_where(path)}.", code="nul_character"
            )
    return value
