"""Request body limits, enforced while the body streams in, before anything spools it.

Django's ASGI handler reads a request's whole body into a temporary file (on disk past
FILE_UPLOAD_MAX_MEMORY_SIZE) before any middleware or view runs, so a view's own size
check comes after the disk has been filled. :class:`BodyLimitASGI` sits in front of
Django and answers 413 as soon as a declared ``Content-Length`` or the bytes streamed so
far pass the route's cap, without reading the rest, and closes the connection so the
server discards nothing more. A route may also refuse a request from its headers alone
(``before_body``), before a single byte of its body is read.

:class:`BodyLimitWSGI` is the same check for a WSGI server; there the body is read lazily
and Django reads no more than the declared ``Content-Length``, so the declared length is
all there is to check.

This module is part of the shared layer: it imports no app. The project's asgi.py and
wsgi.py compose it with the caps from settings and the apps' pre-checks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from voiceagent.errors import ApplicationError

logger = logging.getLogger("voiceagent.bodylimit")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Refusal:
    """An answer given instead of the app's: a status and its JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return json.dumps(self.body).encode()


# A pre-check sees the request's scope (method, path, headers) and may refuse it before its body is read.
BeforeBody = Callable[[Scope], Refusal | None]


class RequestBodyTooLarge(ApplicationError):
    """413: the body is over the cap of its route (``limit`` bytes), wherever that is noticed."""

    status = 413
    code = "body_too_large"

    def __init__(self, limit: int, message: str | None = None):
        message = message or f"The request body is larger than this endpoint accepts ({limit} bytes)."
        super().__init__(message, limit=limit)
        self.limit = limit


def body_too_large(limit: int) -> Refusal:
    error = RequestBodyTooLarge(limit)
    return Refusal(error.status, error.body())


def header_value(scope: Scope, name: str) -> str | None:
    """The first value of header ``name`` (any case) in an ASGI scope, decoded as Latin-1; None when absent."""
    wanted = name.lower().encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


def declared_length(raw: str | None) -> int | None:
    """The Content-Length as a number, or None when there is none (chunked) or it is not a number.

    The server refuses malformed lengths itself; a value we cannot read is left to the
    streamed count, which holds whatever the header says.
    """
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw.strip())


@dataclass(frozen=True)
class BodyLimits:
    """Per-path caps in bytes, and a default for every other path.

    A key is an exact path as routed, or, ending in "/", every path under it (the longest such prefix wins).
    """

    default_max_bytes: int
    max_bytes_by_path: Mapping[str, int] = field(default_factory=dict)

    def for_path(self, path: str) -> int:
        if path in self.max_bytes_by_path:
            return self.max_bytes_by_path[path]
        under = [prefix for prefix in self.max_bytes_by_path if prefix.endswith("/") and path.startswith(prefix)]
        return self.max_bytes_by_path[max(under, key=len)] if under else self.default_max_bytes


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "-"


class BodyLimitASGI:
    """Wraps an ASGI HTTP app; refuses bodies over their route's cap before the app reads them.

    ``before_body`` maps a path to a pre-check that may refuse the request from its headers.
    Non-HTTP scopes pass through untouched.
    """

    def __init__(self, app: ASGIApp, *, limits: BodyLimits, before_body: Mapping[str, BeforeBody] | None = None):
        self.app = app
        self.limits = limits
        self.before_body = dict(before_body or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _routed_path(scope)
        limit = self.limits.for_path(path)
        declared = declared_length(header_value(scope, "content-length"))
        if declared is not None and declared > limit:
            logger.warning(
                "request refused: %s %s declares %d body bytes, over %d (from %s)",
                scope.get("method"),
                path,
                declared,
                limit,
                _client(scope),
            )
            await _send_refusal(send, body_too_large(limit))
            return
        check = self.before_body.get(path)
        refusal = check(scope) if check is not None else None
        if refusal is not None:
            await _send_refusal(send, refusal)
            return
        guarded = _GuardedExchange(scope, receive, send, limit=limit, path=path)
        await self.app(scope, guarded.receive, guarded.send)


def _routed_path(scope: Scope) -> str:
    # ASGI servers may include root_path in path; the caps are written for the paths Django routes.
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


class _GuardedExchange:
    """Counts the body as the app receives it; past the cap, answers 413 and tells the app the client left."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, *, limit: int, path: str):
        self._scope = scope
        self._receive = receive
        self._send = send
        self._limit = limit
        self._path = path
        self._received = 0
        self._response_started = False
        self._refused = False

    async def receive(self) -> Message:
        if self._refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] != "http.request":
            return message
        self._received += len(message.get("body", b""))
        if self._received <= self._limit:
            return message
        # The chunk that crossed the cap never reaches the app; Django takes the disconnect
        # as an aborted request and returns without answering, so the 413 is the answer.
        self._refused = True
        logger.warning(
            "request refused: %s %s streamed over %d body bytes (from %s)",
            self._scope.get("method"),
            self._path,
            self._limit,
            _client(self._scope),
        )
        if not self._response_started:
            await _send_refusal(self._send, body_too_large(self._limit))
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self._refused:
            return  # we have answered (or the response is cut short); the app's answer is dropped
        if message["type"] == "http.response.start":
            self._response_started = True
        await self._send(message)


async def _send_refusal(send: Send, refusal: Refusal) -> None:
    body = refusal.encoded()
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                # The unread rest of the body makes the connection unusable for another request,
                # and closing it stops the server from reading (and discarding) what is still coming.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitWSGI:
    """The WSGI counterpart: refuses a declared ``Content-Length`` over the route's cap before the app runs.

    Under WSGI the body stays in the socket until the app reads it, and Django reads at
    most the declared length (nothing at all of a body sent chunked without one), so the
    declared length bounds what can be taken in.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], *, limits: BodyLimits):
        self.app = app
        self.limits = limits

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        limit = self.limits.for_path(path)
        declared = declared_length(environ.get("CONTENT_LENGTH"))
        if declared is None or declared <= limit:
            return self.app(environ, start_response)
        logger.warning(
            "request refused: %s %s declares %d body bytes, over %d (from %s)",
            environ.get("REQUEST_METHOD"),
            path,
            declared,
            limit,
            environ.get("REMOTE_ADDR", "-"),
        )
        refusal = body_too_large(limit)
        body = refusal.encoded()
        start_response(
            "413 Content Too Large",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [body]
