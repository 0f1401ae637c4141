"""Serve a WSGI application (Django's) to an ASGI server, on a fixed pool of threads.

Django's own ASGI handler runs every sync view and middleware through one thread per process,
hopping to it and back for each; a2wsgi runs them on a pool but blocks the pool's thread on the
event loop for every message (body, headers, each chunk), so under load both wait on the GIL's
5 ms switch interval more than they work (issue 10: a worker held the GIL 54 % of the time at
400 req/s). Here a request crosses threads twice in the common case:

- the loop reads a body of up to ``IN_MEMORY_BODY_BYTES`` before the app starts; a larger one is
  handed to the app as a stream that it pulls chunk by chunk from the loop (a webhook's audio),
  so memory stays bounded by what the app holds (sent chunked, without a length, it is spooled
  to a temporary file first: Django reads exactly CONTENT_LENGTH bytes);
- the app runs in a pool thread and collects up to ``IN_MEMORY_RESPONSE_BYTES`` of its answer;
  the loop sends that at once. A longer answer (a recording) is streamed from the pool thread,
  one chunk at a time, each waiting until the loop has sent it.

Request bodies are limited before they get here (voiceagent.bodylimit wraps this application).
"""

from __future__ import annotations

import asyncio
import io
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

IN_MEMORY_BODY_BYTES = 256 * 1024
IN_MEMORY_RESPONSE_BYTES = 256 * 1024


class ClientGone(OSError):
    """The client went away (or a guard in front refused it) before its request body arrived.

    An OSError, so that Django's ``request.body`` turns it into UnreadablePostError.
    """


class _StreamedBody(io.RawIOBase):
    """The rest of a large request body, pulled from the event loop as the app reads it."""

    def __init__(self, head: bytes, receive, loop: asyncio.AbstractEventLoop) -> None:
        self._buffer = bytearray(head)
        self._receive = receive
        self._loop = loop
        self._more = True

    def readable(self) -> bool:
        return True

    def _pull(self) -> bool:
        if not self._more:
            return False
        message = asyncio.run_coroutine_threadsafe(self._receive(), self._loop).result()
        if message["type"] == "http.disconnect":
            self._more = False
            raise ClientGone("the client went away before its request body arrived")
        self._buffer += message.get("body", b"")
        self._more = message.get("more_body", False)
        return True

    def readinto(self, target) -> int:
        while not self._buffer and self._pull():
            pass
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        del self._buffer[:count]
        return count


class _Response:
    """What the app answered: status, headers, and either the whole body or the iterator to go on with."""

    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes]
    rest: Any = None
    result: Any = None

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info=None):
        if exc_info is not None and self.rest is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status = int(status.split(" ", 1)[0])
        self.headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        return self._write_not_supported

    @staticmethod
    def _write_not_supported(data: bytes) -> None:
        raise NotImplementedError("the WSGI write() callable is not supported; return an iterable")


class ThreadedWSGI:
    """An ASGI application (HTTP only) running ``wsgi_app`` on ``threads`` threads."""

    def __init__(self, wsgi_app, *, threads: int) -> None:
        self.wsgi_app = wsgi_app
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="http")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"ThreadedWSGI serves HTTP only, not {scope['type']}")
        loop = asyncio.get_running_loop()
        body = await self._body_head(receive)
        if body is None:
            return  # the client went away while sending its body
        head, complete = body
        stream = io.BytesIO(head) if complete else io.BufferedReader(_StreamedBody(head, receive, loop))
        environ = wsgi_environ(scope, stream)
        if complete:
            # Django reads CONTENT_LENGTH bytes and no more: a chunked body (no length) would read as empty.
            environ["CONTENT_LENGTH"] = str(len(head))
        response = _Response()
        try:
            await loop.run_in_executor(self.executor, self._run_app, environ, response)
        except ClientGone:
            return  # nobody left to answer
        await send({"type": "http.response.start", "status": response.status, "headers": response.headers})
        if response.rest is None:
            await send({"type": "http.response.body", "body": b"".join(response.chunks)})
            return
        await send({"type": "http.response.body", "body": b"".join(response.chunks), "more_body": True})
        await loop.run_in_executor(self.executor, self._stream_rest, response, send, loop)

    @staticmethod
    async def _body_head(receive) -> tuple[bytes, bool] | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), True
            if size >= IN_MEMORY_BODY_BYTES:
                return b"".join(chunks), False

    def _run_app(self, environ: dict, response: _Response) -> None:
        if "CONTENT_LENGTH" not in environ:
            _spool_chunked_body(environ)
        result = self.wsgi_app(environ, response.start_response)
        chunks, size = [], 0
        iterator = iter(result)
        for chunk in iterator:
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
            if size >= IN_MEMORY_RESPONSE_BYTES:
                response.chunks, response.rest, response.result = chunks, iterator, result
                return
        response.chunks = chunks
        _close(result)

    @staticmethod
    def _stream_rest(response: _Response, send, loop: asyncio.AbstractEventLoop) -> None:
        try:
            for chunk in response.rest:
                if chunk:
                    message = {"type": "http.response.body", "body": chunk, "more_body": True}
                    # Wait for each chunk to go out: the client's pace bounds what the worker holds.
                    asyncio.run_coroutine_threadsafe(send(message), loop).result()
            asyncio.run_coroutine_threadsafe(send({"type": "http.response.body", "body": b""}), loop).result()
        finally:
            _close(response.result)


def _spool_chunked_body(environ: dict) -> None:
    """A large body sent without a length (chunked): read it to a temporary file, then its length is known."""
    spooled = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BODY_BYTES)  # noqa: SIM115 - Django reads it later
    shutil.copyfileobj(environ["wsgi.input"], spooled, 64 * 1024)
    environ["CONTENT_LENGTH"] = str(spooled.tell())
    spooled.seek(0)
    environ["wsgi.input"] = spooled


def _close(result) -> None:
    # WSGI: the server calls close() when done; Django's response sends request_finished from it.
    close = getattr(result, "close", None)
    if close is not None:
        close()


def wsgi_environ(scope: dict, body: io.IOBase) -> dict[str, Any]:
    """PEP 3333's environ for an ASGI HTTP scope."""
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
        # WSGI strings carry the URL's bytes as latin-1; ASGI's path is already percent-decoded UTF-8.
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]) if server[1] is not None else "80",
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = f"HTTP_{name}"
        value = raw_value.decode("latin-1")
        environ[name] = f"{environ[name]},{value}" if name in environ else value
    return environ
