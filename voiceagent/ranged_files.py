"""Serve a stored file with one HTTP byte range (RFC 9110 §14), streamed block by block.

Players seek in an ``<audio>`` element by asking for ``Range: bytes=a-b``, which Django's
FileResponse does not answer. And under ASGI, Django reads a response's synchronous
iterator into one list before sending it (``StreamingHttpResponse.__aiter__``), so a
FileResponse would hold the whole file in memory; :class:`FileRangeResponse` instead reads
block by block in a worker thread.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from asgiref.sync import sync_to_async
from django.core.files.storage import Storage
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils.cache import quote_etag
from django.utils.http import content_disposition_header, parse_etags

from voiceagent.errors import error_response

BLOCK_SIZE = 64 * 1024
# Longer headers are not one sane range; the cap also keeps int() away from huge digit strings.
MAX_RANGE_HEADER = 100
# RFC 9110: the unit is case-insensitive; a list element may have whitespace around it, not inside.
ONE_RANGE = re.compile(r"bytes=[ \t]*(\d*)-(\d*)[ \t]*", re.IGNORECASE)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiable(Exception):
    pass


def parse_byte_range(header: str | None, size: int) -> ByteRange | None:
    """The one range ``header`` asks of a ``size``-byte file, or None to send the whole file.

    None as well for a malformed header or one that asks for several ranges: RFC 9110 lets a
    server ignore Range, and a whole 200 is what every client handles. Raises
    :class:`RangeNotSatisfiable` for a well-formed range that lies wholly past the end.
    """
    if not header or len(header) > MAX_RANGE_HEADER:
        return None
    match = ONE_RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)  # bytes=-n: the last n bytes
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range-spec makes the header invalid: ignored
    if start >= size:
        raise RangeNotSatisfiable
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end)


class FileRangeResponse(StreamingHttpResponse):
    """Streams ``length`` bytes of ``file`` from ``start``; closes the file when the response is closed."""

    def __init__(self, file: IO[bytes], *, start: int, length: int, **kwargs) -> None:
        super().__init__(_read_blocks(file, start, length), **kwargs)
        self._resource_closers.append(file.close)
        self.headers["Content-Length"] = str(length)

    async def __aiter__(self):
        # Each block is read in a thread of its own, so the event loop never waits on the disk
        # and only one block is held at a time (Django's default would read all blocks first).
        blocks = iter(self.streaming_content)
        read_next = sync_to_async(next, thread_sensitive=False)
        while (block := await read_next(blocks, None)) is not None:
            yield block


def _read_blocks(file: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    file.seek(start)
    remaining = length
    while remaining > 0:
        block = file.read(min(BLOCK_SIZE, remaining))
        if not block:  # the file shrank under us: send what there is
            return
        remaining -= len(block)
        yield block


def stored_file_response(
    request: HttpRequest,
    *,
    storage: Storage,
    name: str,
    content_type: str,
    filename: str,
    max_age: int = 3600,
) -> HttpResponseBase:
    """Answer GET or HEAD for the stored file ``name``: 200 whole, 206 one range, 416, or 304.

    Raises FileNotFoundError (from the storage) when the file is gone.
    """
    size = storage.size(name)
    # Stored names are never reused (the storage suffixes clashes), so name and size identify the bytes.
    etag = quote_etag(hashlib.sha256(f"{name}:{size}".encode()).hexdigest()[:32])
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        # Only the signed-in browser may keep it; shared caches never see an owner's recording.
        "Cache-Control": f"private, max-age={max_age}",
        "Content-Disposition": content_disposition_header(False, filename),
    }
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match and (etag in parse_etags(if_none_match) or "*" in parse_etags(if_none_match)):
        return HttpResponse(status=304, headers=headers)

    if_range = request.headers.get("If-Range")
    try:
        # A range of a different version is no use to the client: it gets the whole file.
        wanted = parse_byte_range(request.headers.get("Range"), size) if if_range in (None, etag) else None
    except RangeNotSatisfiable:
        return error_response(
            416,
            "range_not_satisfiable",
            f"Range not satisfiable: the file has {size} bytes.",
            headers={**headers, "Content-Range": f"bytes */{size}"},
        )
    byte_range = wanted or ByteRange(0, size - 1)
    headers["Content-Type"] = content_type
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
    if request.method == "HEAD" or size == 0:
        # The headers a GET would carry, without opening the file.
        return HttpResponse(status=status, headers={**headers, "Content-Length": str(max(byte_range.length, 0))})
    return FileRangeResponse(
        storage.open(name, "rb"), start=byte_range.start, length=byte_range.length, status=status, headers=headers
    )
