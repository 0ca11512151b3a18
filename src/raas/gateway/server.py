"""The gateway's HTTP/1.1 server: asyncio and httptools (llhttp), keep-alive, one request at a
time per connection; a response is written straight to the client's transport, so a streamed
answer costs one write per piece the upstream sent (no framework message per SSE event).

`GatewayServer` serves a `Gateway` on a host and port; `run` is what `raas gateway` does:
uvloop when installed, until SIGINT or SIGTERM, then the requests in flight finish (for at most
`SHUTDOWN_GRACE_SECONDS`) and the ledger writer is flushed.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from typing import Final, Protocol, cast

import httptools

from raas.gateway.timers import DeadlineTimer

KEEP_ALIVE_SECONDS: Final = 5.0  # an idle client connection is closed after this
SHUTDOWN_GRACE_SECONDS: Final = 30.0
BODY_BYTES_MAX: Final = 64 * 1024 * 1024  # a larger request body is refused (413)
# A request begun but not received whole by then is answered 408 and its connection closed, so a
# client trickling bytes cannot hold a connection (and its buffers) for ever.
REQUEST_SECONDS: Final = 30.0
BACKLOG: Final = 2048

_REASONS: Final = {
    100: b"Continue",
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK: Final = b"0\r\n\r\n"

Headers = list[tuple[bytes, bytes]]

_HEADS_KEPT: Final = 256
_heads: dict[tuple[int, tuple[tuple[bytes, bytes], ...], bool], bytes] = {}


class Handler(Protocol):
    """What the server serves: `handle` answers one exchange (the gateway)."""

    async def startup(self) -> None: ...

    async def shutdown(self) -> None: ...

    async def handle(self, exchange: Exchange) -> None: ...


class Source(Protocol):
    """What a streamed response reads from, paused while the agent reads slower than it."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class _Date:
    """The Date header, formatted once a second."""

    second = 0
    header = b""

    @classmethod
    def line(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second = now
            cls.header = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return cls.header


class Exchange:
    """One request and its response: the request's method, path, headers (names in lower case)
    and body; `respond` answers at once, `start`, `write` and `end` stream a response (chunked,
    or until close for an HTTP/1.0 client). Writes after the agent went away are dropped."""

    __slots__ = (
        "_chunked",
        "_connection",
        "_paused_source",
        "_source",
        "_unsent",
        "body",
        "done",
        "headers",
        "keep_alive",
        "method",
        "path",
        "started",
    )

    def __init__(
        self,
        connection: _ClientConnection,
        method: bytes,
        path: bytes,
        headers: Headers,
        body: bytes,
        keep_alive: bool,
        http11: bool,
    ) -> None:
        self._connection = connection
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self._chunked = http11
        self._unsent = b""
        self._source: Source | None = None
        self._paused_source = False
        self.started = False
        self.done = False

    def respond(self, status: int, body: bytes, headers: Headers) -> None:
        """The whole response: status, headers and a body of known length."""
        self.started = self.done = True
        self._connection.write(
            b"%b%bcontent-length: %d\r\n\r\n%b"
            % (self._head(status, headers), _Date.line(), len(body), body)
        )

    def start(self, status: int, headers: Headers) -> None:
        """The status and headers of a response whose body follows in pieces: they go out with
        the first piece: one write and one wake-up of the agent instead of two, and a stream's
        first event is what the agent waits for."""
        self.started = True
        framing = b"transfer-encoding: chunked\r\n" if self._chunked else b""
        if not self._chunked:
            self.keep_alive = False  # the end of the body is the end of the connection
        self._unsent = b"%b%b%b\r\n" % (self._head(status, headers), _Date.line(), framing)

    def write(self, data: bytes) -> None:
        """A piece of the body (not empty)."""
        framed = b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data
        if self._unsent:
            framed, self._unsent = self._unsent + framed, b""
        connection = self._connection  # its `write` inlined: this runs once per streamed event
        if not connection.closed and connection._transport is not None:
            connection._transport.write(framed)

    def end(self, data: bytes = b"") -> None:
        """The last piece of the body, if any, and the end of the response."""
        self.done = True
        if self._chunked:
            last = b"%x\r\n%b\r\n0\r\n\r\n" % (len(data), data) if data else _LAST_CHUNK
        else:
            last = data
        if self._unsent:
            last, self._unsent = self._unsent + last, b""
        if last:
            self._connection.write(last)
        self.stream_from(None)

    def stream_from(self, source: Source | None) -> None:
        """Pause `source`'s reading while the agent's side cannot take more (None: done)."""
        self._resume_source()
        self._source, self._paused_source = source, False
        if source is not None and self._connection.writing_paused:
            self._pause_source()

    def _pause_source(self) -> None:
        if self._source is not None and not self._paused_source:
            self._paused_source = True
            self._source.pause_reading()

    def _resume_source(self) -> None:
        if self._source is not None and self._paused_source:
            self._paused_source = False
            self._source.resume_reading()

    def _head(self, status: int, headers: Headers) -> bytes:
        # A handler answers with a few sets of headers: each head is rendered once.
        key = (status, tuple(headers), self.keep_alive)
        head = _heads.get(key)
        if head is None:
            lines = [b"HTTP/1.1 %d %b\r\n" % (status, _REASONS.get(status, b""))]
            for name, value in headers:
                lines.append(b"%b: %b\r\n" % (name, value))
            if not self.keep_alive:
                lines.append(b"connection: close\r\n")
            head = b"".join(lines)
            if len(_heads) >= _HEADS_KEPT:
                _heads.clear()
            _heads[key] = head
        return head


class _ClientConnection(asyncio.Protocol):
    """One agent's connection: parses requests with httptools and has the handler answer them
    one at a time, in order (pipelined requests wait their turn)."""

    def __init__(self, server: GatewayServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: Headers = []
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._queue: deque[Exchange] = deque()
        self._current: Exchange | None = None
        # Deadlines (loop time): an idle connection's close, and a request's receipt whole.
        self._idle_due: float | None = None
        self._request_due: float | None = None
        self._timer = DeadlineTimer(self._loop, self._check_deadlines)
        self._last = False  # no request after the one being served
        self.writing_paused = False
        self.closed = False
        # httptools looks its callbacks up once per parser, as attributes.
        self.on_header = self._on_header
        self._parser = httptools.HttpRequestParser(self)

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._server._connections.add(self)
        self._idle_due = due = self._loop.time() + KEEP_ALIVE_SECONDS
        self._timer.by(due)

    def data_received(self, data: bytes) -> None:
        self._idle_due = None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No other protocol is served: the request is answered as it is (RFC 9110 lets a
            # server ignore Upgrade), and nothing after it is read.
            self._last = True
            if self._transport is not None:
                self._transport.pause_reading()
            if self._current is None and not self._queue:
                self._refuse(400, b"protocol upgrades are not served")
        except httptools.HttpParserError as error:
            self._refuse(400, b"malformed HTTP request: " + str(error).encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._server._connections.discard(self)
        self._queue.clear()
        if self._current is not None:  # the agent went away: its stream is read to the end
            self._current._resume_source()
        self._idle_due = self._request_due = None
        self._timer.cancel()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self._current is not None:
            self._current._pause_source()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self._current is not None:
            self._current._resume_source()

    # -- httptools callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body.clear()
        self._body_bytes = 0
        self._request_due = due = self._loop.time() + REQUEST_SECONDS
        self._timer.by(due)

    def on_url(self, url: bytes) -> None:
        self._url += url

    def _on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_body(self, piece: bytes) -> None:
        # Counted as it comes: a chunked body states no length up front.
        self._body_bytes += len(piece)
        if self._body_bytes > BODY_BYTES_MAX:
            self._refuse(413, b"the request body is larger than %d bytes" % BODY_BYTES_MAX)
        elif not self.closed:
            self._body.append(piece)

    def on_headers_complete(self) -> None:
        for name, value in self._headers:
            if name == b"expect" and value.lower() == b"100-continue":
                self.write(_CONTINUE)
            elif name == b"content-length" and value.isdigit() and int(value) > BODY_BYTES_MAX:
                self._refuse(413, b"the request body is larger than %d bytes" % BODY_BYTES_MAX)

    def on_message_complete(self) -> None:
        self._request_due = None
        if self.closed:
            return
        parser = self._parser
        body = self._body
        exchange = Exchange(
            self,
            parser.get_method(),
            self._url.partition(b"?")[0],
            self._headers,
            body[0] if len(body) == 1 else b"".join(body),
            parser.should_keep_alive(),
            parser.get_http_version() == "1.1",
        )
        if self._current is None:
            self._serve(exchange)
        else:
            self._queue.append(exchange)
            if self._transport is not None:
                self._transport.pause_reading()  # no more until the queue is served

    # -- serving ---------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.closed and self._transport is not None:
            self._transport.write(data)

    def _serve(self, exchange: Exchange) -> None:
        self._current = exchange
        task = self._loop.create_task(self._server.handler.handle(exchange))
        self._server._tasks.add(task)
        task.add_done_callback(self._served)

    def _served(self, task: asyncio.Task[None]) -> None:
        self._server._tasks.discard(task)
        exchange = self._current
        self._current = None
        assert exchange is not None
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            self._server.log_failure(failure)
            exchange.keep_alive = False
            if not exchange.started:
                exchange.respond(500, b"the gateway failed", [])
        elif not exchange.done:
            exchange.keep_alive = False  # a response left unfinished: the connection ends it
        if not exchange.keep_alive or self._last or self._server.stopping:
            self.close()
            return
        if self._queue:
            self._serve(self._queue.popleft())
            if not self._queue and not self._last and self._transport is not None:
                self._transport.resume_reading()
        elif not self.closed:
            self._idle_due = due = self._loop.time() + KEEP_ALIVE_SECONDS
            self._timer.by(due)

    def _refuse(self, status: int, message: bytes) -> None:
        if self._current is None and not self.closed:
            self.write(
                b"HTTP/1.1 %d %b\r\n%bcontent-type: text/plain\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%b"
                % (status, _REASONS.get(status, b""), _Date.line(), len(message), message)
            )
        self.close()

    def _check_deadlines(self) -> None:
        if self.closed:
            return
        now = self._loop.time()
        if self._request_due is not None and now >= self._request_due:
            if self._current is None:
                self._refuse(408, b"the request was not received whole in %g s" % REQUEST_SECONDS)
                return
            # A pipelined request waits for the one being served: its own time starts later.
            self._request_due = now + REQUEST_SECONDS
        if self._idle_due is not None and now >= self._idle_due:
            self._idle_due = None
            if self._current is None:
                self.close()
                return
        dues = [due for due in (self._request_due, self._idle_due) if due is not None]
        if dues:
            self._timer.by(min(dues))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._transport is not None:
                self._transport.close()

    @property
    def idle(self) -> bool:
        return self._current is None


class GatewayServer:
    """Serves a handler (the gateway) over HTTP/1.1 on a host and port."""

    def __init__(self, handler: Handler, log_failure: Callable[[BaseException], None]) -> None:
        self.handler = handler
        self.log_failure = log_failure
        self.stopping = False
        self._server: asyncio.Server | None = None
        self._connections: set[_ClientConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> None:
        """Start the handler (its ledger writer, its upstream pool), then listen."""
        await self.handler.startup()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ClientConnection(self), host, port, backlog=BACKLOG
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self, grace_seconds: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop listening, let the requests in flight finish (at most `grace_seconds`), close
        the connections and stop the handler (which flushes the ledger writer)."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            if connection.idle:
                connection.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace_seconds)
        for task in list(self._tasks):
            task.cancel()
        for connection in list(self._connections):
            connection.close()
        await self.handler.shutdown()


def run(
    handler: Handler, host: str, port: int, log_failure: Callable[[BaseException], None]
) -> None:
    """Serve until SIGINT or SIGTERM, on uvloop where it is installed."""

    async def main() -> None:
        server = GatewayServer(handler, log_failure)
        await server.start(host, port)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stopped.set)
        await stopped.wait()
        await server.stop()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return cast(Callable[[], asyncio.AbstractEventLoop], uvloop.new_event_loop)
