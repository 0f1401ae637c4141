"""voiceagent.threaded_wsgi: Django's WSGI handler behind the ASGI server, on a pool of threads."""

from __future__ import annotations

import asyncio
import hashlib
import threading

from voiceagent.threaded_wsgi import IN_MEMORY_BODY_BYTES, IN_MEMORY_RESPONSE_BYTES, ThreadedWSGI


def echo_app(environ, start_response):
    """Answers what it saw: the body's length and digest, a few environ keys, the thread it ran on."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    seen = "|".join(
        [
            str(len(body)),
            hashlib.sha256(body).hexdigest(),
            environ["PATH_INFO"],
            environ["QUERY_STRING"],
            environ.get("HTTP_X_TWICE", ""),
            environ.get("CONTENT_TYPE", ""),
            environ["REMOTE_ADDR"],
            threading.current_thread().name,
        ]
    )
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Echo", "yes")])
    return [seen.encode("latin-1")]


def call(app, *, body_chunks=(b"",), headers=(), path="/p", query=b"", disconnect_first=False):
    """Run one request through ``app``; return (messages sent, app's receive count)."""
    incoming = [
        {"type": "http.request", "body": c, "more_body": i < len(body_chunks) - 1} for i, c in enumerate(body_chunks)
    ]
    if disconnect_first:
        incoming = [{"type": "http.disconnect"}]
    sent = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": query,
        "headers": list(headers),
        "server": ("testserver", 80),
        "client": ("10.1.2.3", 5555),
        "scheme": "http",
        "http_version": "1.1",
    }
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_small_body_and_the_environ_reach_the_app_on_a_pool_thread():
    app = ThreadedWSGI(echo_app, threads=2)
    sent = call(
        app,
        body_chunks=[b"hello ", b"world"],
        headers=[(b"x-twice", b"a"), (b"x-twice", b"b"), (b"content-type", b"text/plain")],
        path="/caf\u00e9",
        query=b"a=1&b=%20",
    )
    assert sent[0] == {
        "type": "http.response.start",
        "status": 201,
        "headers": [(b"content-type", b"text/plain"), (b"x-echo", b"yes")],
    }
    length, digest, path, query, twice, content_type, remote, thread = sent[1]["body"].decode("latin-1").split("|")
    # Sent without a length (chunked), the body is still read whole: its length is filled in.
    assert (int(length), digest) == (11, hashlib.sha256(b"hello world").hexdigest())
    assert path == "/caf\u00e9".encode().decode("latin-1")
    assert (query, twice, content_type, remote) == ("a=1&b=%20", "a,b", "text/plain", "10.1.2.3")
    assert thread.startswith("http")
    assert len(sent) == 2 and not sent[1].get("more_body")


def test_a_large_body_is_streamed_to_the_app_or_spooled_when_chunked():
    payload = bytes(range(256)) * (3 * IN_MEMORY_BODY_BYTES // 256)
    chunks = [payload[i : i + 65536] for i in range(0, len(payload), 65536)]
    app = ThreadedWSGI(echo_app, threads=2)
    for headers in ([(b"content-length", str(len(payload)).encode())], []):
        sent = call(app, body_chunks=chunks, headers=headers)
        length, digest = sent[1]["body"].decode().split("|")[:2]
        assert (int(length), digest) == (len(payload), hashlib.sha256(payload).hexdigest())


def test_a_long_answer_goes_out_in_chunks():
    piece = b"x" * 65536
    count = 3 * IN_MEMORY_RESPONSE_BYTES // len(piece)
    closed = []

    class Answer:
        def __iter__(self):
            return iter([piece] * count)

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Answer()

    sent = call(ThreadedWSGI(app, threads=1))
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert b"".join(m["body"] for m in bodies) == piece * count
    assert len(bodies) > 2  # not gathered into one message
    assert [m.get("more_body", False) for m in bodies][-1] is False
    assert closed == [True]


def test_a_client_gone_before_its_body_never_reaches_the_app():
    ran = []

    def app(environ, start_response):
        ran.append(True)
        start_response("200 OK", [])
        return [b""]

    assert call(ThreadedWSGI(app, threads=1), disconnect_first=True) == []
    assert ran == []


def test_a_disconnect_while_spooling_a_chunked_body_sends_nothing():
    chunk = b"z" * 65536
    incoming = [{"type": "http.request", "body": chunk, "more_body": True}] * 6 + [{"type": "http.disconnect"}]
    sent = []

    async def receive():
        return incoming.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"", "headers": []}
    asyncio.run(ThreadedWSGI(echo_app, threads=1)(scope, receive, send))
    assert sent == []
