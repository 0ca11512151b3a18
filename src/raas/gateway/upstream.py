"""The gateway's upstream client: keep-alive HTTP/1.1 over asyncio, lean enough to sit on every
proxied model call (a general client spent more CPU per request than the rest of the gateway).

One request at a time per connection; idle connections wait in a pool per origin. Responses
are parsed by httptools (llhttp): status, headers, then the body as it arrives, Content-Length,
chunked or until close. A tier's timeout bounds the connect and every wait for more bytes.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Final, Protocol, cast
from urllib.parse import urlsplit

import httptools

from raas.errors import RaasError
from raas.gateway.timers import DeadlineTimer

IDLE_CONNECTIONS_MAX: Final = 1000  # per origin; more are closed when they come back
BUFFERED_BYTES_MAX: Final = 256 * 1024  # read no further until the relay catches up


class UpstreamError(RaasError):
    """An upstream could not be reached or broke the HTTP exchange."""


class UpstreamTimeout(UpstreamError):
    """An upstream sent nothing for longer than the tier's timeout."""


class Endpoint:
    """One upstream URL, prepared once: where to connect and the request head to send."""

    __slots__ = ("_head", "host", "key", "port", "tls")

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL, got {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.key = (parts.scheme, self.host, self.port)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        default_port = self.port == (443 if self.tls else 80)
        authority = parts.netloc.rpartition("@")[2] if not default_port else self.host
        lines = [f"POST {path} HTTP/1.1", f"host: {authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._head = ("\r\n".join(lines) + "\r\ncontent-length: ").encode("latin-1")

    def request_bytes(self, body: bytes) -> bytes:
        return b"%b%d\r\n\r\n%b" % (self._head, len(body), body)


class Stream(Protocol):
    """Where a response's body can go as it arrives, from the connection's callbacks: no task
    switch before the first piece goes on, between pieces, nor before the last."""

    def begin(self, status: int, source: asyncio.Transport) -> bool:
        """The headers came: True to take the body (`source` can be paused meanwhile)."""
        ...

    def pass_on(self, data: bytes) -> None:
        """The body bytes of one read from the upstream (not empty)."""
        ...

    def end(self, data: bytes) -> None:
        """The end of the body, with the bytes that came with it (maybe none)."""
        ...


class Connection(asyncio.Protocol):
    """A connection to one origin and the exchange on it: after `UpstreamPool.post` returns,
    `status` is set and `receive` gives the body piece by piece, or, if the stream given to
    `post` took it, `finished` waits for its end; `release` hands the connection back."""

    __slots__ = (
        "_body",
        "_buffered",
        "_error",
        "_headers",
        "_idle_timeout",
        "_last_activity",
        "_loop",
        "_parser",
        "_paused",
        "_pool",
        "_stream",
        "_stream_error",
        "_timer",
        "_waiter",
        "closed",
        "complete",
        "headers_done",
        "keep_alive",
        "key",
        "on_body",
        "on_header",
        "received_any",
        "status",
        "streaming",
        "transport",
    )

    # httptools looks its callbacks up when a parser is made, one per exchange: these, present
    # as None ("not wanted"), spare it an AttributeError each.
    on_message_begin = None
    on_status = None
    on_chunk_header = None
    on_chunk_complete = None

    def __init__(self, pool: UpstreamPool, key: tuple[str, str, int]) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser: httptools.HttpResponseParser | None = None
        self._body: list[bytes] = []
        self._buffered = 0
        self._headers: dict[bytes, bytes] = {}
        # httptools looks its callbacks up by name once per parser: C-level methods here spare
        # a Python frame for every body chunk and header.
        self.on_body = self._body.append
        self.on_header = self._headers.__setitem__
        self._paused = False
        self._stream: Stream | None = None
        self._stream_error: Exception | None = None
        self.streaming = False  # the stream took the body
        self._waiter: asyncio.Future[None] | None = None
        self._error: UpstreamError | None = None
        # One timer for the connection, kept from one exchange to the next: it looks at the time
        # of the last activity when it fires, and stops between exchanges.
        self._timer = DeadlineTimer(self._loop, self._check_idle)
        self._idle_timeout = 0.0
        self._last_activity = 0.0
        self.status = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.received_any = False

    # -- the exchange ----------------------------------------------------------------------------

    def _start(self, data: bytes, timeout: float, stream: Stream | None) -> None:
        assert self.transport is not None
        self._stream, self._stream_error, self.streaming = stream, None, False
        self._parser = httptools.HttpResponseParser(self)
        self._body.clear()
        self._headers.clear()
        self._buffered = 0
        self._error = None
        self.status = 0
        self.headers_done = self.complete = self.keep_alive = self.received_any = False
        self._idle_timeout = timeout
        self._last_activity = now = self._loop.time()
        self._timer.by(now + timeout)
        self.transport.write(data)

    async def _wait_headers(self) -> None:
        while not self.headers_done:
            if self._error is not None:
                raise self._error
            await self._wait()

    async def receive(self) -> bytes:
        """The body bytes that arrived since the last call (waiting if none did); b"" at the end.
        Raises `UpstreamError` (or `UpstreamTimeout`) if the upstream breaks off."""
        body = self._body
        while not body:
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            # `_wait` inlined: this runs once per streamed event.
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        data = self._take_body()
        self._resume()
        return data

    async def finished(self) -> None:
        """Wait for the end of the body the stream given to `post` took (its `end` called).
        Raises `UpstreamError` (or `UpstreamTimeout`) if the upstream broke off first, and what
        the stream raised."""
        try:
            while True:
                if self._stream_error is not None:
                    raise self._stream_error
                stream = self._stream
                if stream is None:
                    return
                if self.complete:  # with the connection's close: a body delimited by it
                    self._stream = None
                    stream.end(self._take_body())
                    return
                if self._error is not None:
                    raise self._error
                await self._wait()
        finally:
            self._stream = self._stream_error = None

    def _take_body(self) -> bytes:
        """The body pieces that arrived, joined; the buffer emptied."""
        body = self._body
        data = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        return data

    def _resume(self) -> None:
        """What was buffered is taken: the upstream is read again if it was paused."""
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    async def read(self) -> bytes:
        """The rest of the body."""
        parts = []
        while data := await self.receive():
            parts.append(data)
        return b"".join(parts)

    def release(self) -> None:
        """Done with the exchange: the connection goes back to the pool if it can be reused."""
        self._stream = self._stream_error = None
        if self.complete and self.keep_alive and not self.closed:
            self._pool._idle(self)  # its timer stops when it next fires between exchanges
            return
        self._timer.cancel()
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def _wait(self) -> None:
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _check_idle(self) -> None:
        if self.complete:  # between exchanges: the next one sets the timer again
            return
        due = self._last_activity + self._idle_timeout
        if self._loop.time() >= due:
            self._fail(UpstreamTimeout(f"no bytes for {self._idle_timeout:g} s"))
            self.close()
        else:
            self._timer.by(due)

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._last_activity = self._loop.time()
        self.received_any = True
        parser = self._parser
        if parser is None:  # bytes between exchanges: the connection cannot be trusted
            self.close()
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(UpstreamError(f"malformed HTTP response: {error}"))
            self.close()
            return
        stream = self._stream
        if stream is not None and self.headers_done:
            try:
                if not self.streaming:  # the headers just came: the stream may take the body
                    assert self.transport is not None
                    self.streaming = stream.begin(self.status, self.transport)
                    if not self.streaming:
                        self._stream = None
                    else:
                        self._resume()
                if self.streaming:
                    # The task waiting in `post` or `finished` is woken only at the end.
                    body = self._body
                    if not self.complete:
                        if body:
                            # `_take_body` inlined: this runs once per streamed event.
                            data = body[0] if len(body) == 1 else b"".join(body)
                            body.clear()
                            stream.pass_on(data)
                        return
                    self._stream = None
                    stream.end(self._take_body())
                    self._wake()
                    return
            except Exception as error:  # the stream's own failure: `finished` raises it
                self._stream, self._stream_error = None, error
                self._wake()
                return
        self._buffered += len(data)
        if self._buffered > BUFFERED_BYTES_MAX and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()
        waiter = self._waiter  # `_wake` inlined: this runs once per streamed event
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool._forget(self)
        if not self.complete:
            if self.headers_done and self._until_close():
                self.complete = True  # a body delimited by the end of the connection
                self._wake()
            else:
                reason = f": {exc}" if exc is not None else ""
                self._fail(UpstreamError(f"the upstream closed the connection{reason}"))

    # -- httptools callbacks ---------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self.status = self._parser.get_status_code()
        self.headers_done = True

    def on_message_complete(self) -> None:
        assert self._parser is not None
        self.keep_alive = self._parser.should_keep_alive()
        self.complete = True
        self._parser = None

    def _until_close(self) -> bool:
        # A body without length or chunks ends with the connection; llhttp would need to be
        # told of the EOF, which httptools does not pass on.
        if self.status in (204, 304):
            return False
        names = {name.lower() for name in self._headers}
        return b"content-length" not in names and b"transfer-encoding" not in names


class UpstreamPool:
    """Keep-alive connections per origin, opened on demand. Use inside a running loop."""

    def __init__(self) -> None:
        self._idle_by_origin: dict[tuple[str, str, int], list[Connection]] = {}
        self._open: set[Connection] = set()
        self._tls: ssl.SSLContext | None = None

    async def post(
        self, endpoint: Endpoint, body: bytes, timeout: float, stream: Stream | None = None
    ) -> Connection:
        """Send a POST and wait for the response's status and headers; the caller reads the
        body from the returned connection and then calls its `release`. With a `stream`, the
        body goes to it as it arrives if its `begin` takes it when the headers come (then this
        returns at the end of the body, or when the upstream breaks off)."""
        data = endpoint.request_bytes(body)
        idle = self._idle_by_origin.get(endpoint.key)
        while idle:
            connection = idle.pop()
            if (
                connection.closed
                or connection.transport is None
                or connection.transport.is_closing()
            ):
                continue
            connection._start(data, timeout, stream)
            try:
                await connection._wait_headers()
                return connection
            except UpstreamTimeout:
                connection.release()
                raise
            except UpstreamError:
                connection.release()
                if connection.received_any:
                    raise
                # The upstream closed an idle connection before our request reached it:
                # nothing was processed, so the request goes on a fresh connection.
        connection = await self._connect(endpoint, timeout)
        connection._start(data, timeout, stream)
        try:
            await connection._wait_headers()
        except BaseException:
            connection.release()
            raise
        return connection

    async def _connect(self, endpoint: Endpoint, timeout: float) -> Connection:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if endpoint.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        try:
            async with asyncio.timeout(timeout):
                _, protocol = await loop.create_connection(
                    lambda: Connection(self, endpoint.key),
                    endpoint.host,
                    endpoint.port,
                    ssl=tls,
                    server_hostname=endpoint.host if tls else None,
                )
        except TimeoutError as error:
            raise UpstreamTimeout(
                f"could not connect to {endpoint.host}:{endpoint.port} in {timeout:g} s"
            ) from error
        except OSError as error:
            raise UpstreamError(
                f"could not connect to {endpoint.host}:{endpoint.port}: {error.strerror or error}"
            ) from error
        self._open.add(protocol)
        return protocol

    def _idle(self, connection: Connection) -> None:
        idle = self._idle_by_origin.setdefault(connection.key, [])
        if len(idle) >= IDLE_CONNECTIONS_MAX:
            connection.close()
        else:
            idle.append(connection)

    def _forget(self, connection: Connection) -> None:
        self._open.discard(connection)

    async def aclose(self) -> None:
        """Close every connection, idle or not."""
        for connection in list(self._open):
            connection.close()
        self._idle_by_origin.clear()
        self._open.clear()
        await asyncio.sleep(0)  # let the transports finish closing
