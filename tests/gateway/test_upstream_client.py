"""The gateway's upstream client against raw TCP servers that answer with exact bytes: body
framings (length, chunked, until close), keep-alive reuse, a stale pooled connection, timeouts
before the headers and mid-body (and per exchange on a reused connection), malformed responses
and refused connections; a stream that takes the body as it comes, or leaves it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from raas.gateway.upstream import Endpoint, UpstreamError, UpstreamPool, UpstreamTimeout

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


async def _with_server(handler: Handler, test: Callable[[str], Awaitable[None]]) -> None:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await test(f"http://127.0.0.1:{port}/v1/chat/completions")
    finally:
        server.close()


def _run(handler: Handler, test: Callable[[str], Awaitable[None]]) -> None:
    asyncio.run(_with_server(handler, test))


def test_request_bytes_carry_path_host_headers_and_length() -> None:
    endpoint = Endpoint("http://example.test:8000/v1/chat/completions?x=1", {"a": "b"})
    assert endpoint.request_bytes(b"{}") == (
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: example.test:8000\r\na: b\r\n"
        b"content-length: 2\r\n\r\n{}"
    )
    assert Endpoint("https://api.example.test/v1", {}).key == ("https", "api.example.test", 443)
    with pytest.raises(ValueError, match="http"):
        Endpoint("ftp://example.test/", {})


def test_body_framings_and_keep_alive_reuse() -> None:
    requests: list[bytes] = []
    connections = 0
    answers = [
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"6\r\ndata: \r\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 503 Busy\r\ncontent-length: 4\r\n\r\nbusy",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for answer in answers:
            requests.append(await _read_request(reader))
            writer.write(answer)
            await writer.drain()
        writer.close()

    async def test(url: str) -> None:
        pool = UpstreamPool()
        endpoint = Endpoint(url, {"content-type": "application/json"})
        bodies = []
        for _ in answers:
            connection = await pool.post(endpoint, b'{"n":1}', 5)
            bodies.append((connection.status, await connection.read()))
            connection.release()
        await pool.aclose()
        assert bodies == [(200, b"hello"), (200, b"data: abc"), (503, b"busy")]

    _run(handler, test)
    assert connections == 1  # one connection carried all three exchanges
    assert all(request.endswith(b'\r\n\r\n{"n":1}') for request in requests)


def test_a_body_that_ends_with_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n\n")
        await writer.drain()
        writer.write(b"data: 2\n\n")
        writer.close()

    async def test(url: str) -> None:
        pool = UpstreamPool()
        connection = await pool.post(Endpoint(url, {}), b"{}", 5)
        assert await connection.read() == b"data: 1\n\ndata: 2\n\n"
        connection.release()
        await pool.aclose()

    _run(handler, test)


def test_a_pooled_connection_the_upstream_dropped_is_replaced_without_failing() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        # The next request on this connection finds it closed, unanswered: as when an
        # upstream's keep-alive timeout ends a connection while the request is on its way.
        await _read_request(reader)
        writer.close()

    async def test(url: str) -> None:
        pool = UpstreamPool()
        endpoint = Endpoint(url, {})
        for _ in range(3):
            connection = await pool.post(endpoint, b"{}", 5)
            assert await connection.read() == b"ok"
            connection.release()
        await pool.aclose()

    _run(handler, test)
    assert connections == 3


@pytest.mark.parametrize("where", ["headers", "body"])
def test_silence_longer_than_the_timeout_is_an_upstream_timeout(where: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        if where == "body":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
            await writer.drain()
        await asyncio.sleep(2)
        writer.close()

    async def test(url: str) -> None:
        pool = UpstreamPool()
        with pytest.raises(UpstreamTimeout, match=r"no bytes for 0\.3 s"):
            connection = await pool.post(Endpoint(url, {}), b"{}", 0.3)
            assert await connection.receive() == b"abc"
            await connection.receive()
        await pool.aclose()

    _run(handler, test)


def test_the_timeout_runs_per_exchange_on_a_reused_connection() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for _ in range(4):  # answered at once, together longer than the timeout
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
        await _read_request(reader)  # then silence
        await asyncio.sleep(2)
        writer.close()

    async def test(url: str) -> None:
        pool = UpstreamPool()
        endpoint = Endpoint(url, {})
        for _ in range(4):
            connection = await pool.post(endpoint, b"{}", 0.3)
            assert await connection.read() == b"ok"
            connection.release()
            await asyncio.sleep(0.15)
        with pytest.raises(UpstreamTimeout, match=r"no bytes for 0\.3 s"):
            await pool.post(endpoint, b"{}", 0.3)
        await pool.aclose()

    _run(handler, test)
    assert connections == 1


def _answering(*pieces: bytes) -> Handler:
    """Reads one request, writes these pieces a little apart (so that they arrive in separate
    reads), then closes the connection."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.close()

    return handler


class Taker:
    """A stream that takes bodies of a status below 400, and records what it is handed."""

    def __init__(self, fail_on: bytes = b"") -> None:
        self.calls: list[tuple[str, object]] = []
        self.fail_on = fail_on

    def begin(self, status: int, source: asyncio.Transport) -> bool:
        self.calls.append(("begin", status))
        return status < 400

    def pass_on(self, data: bytes) -> None:
        self.calls.append(("pass_on", data))
        if self.fail_on and self.fail_on in data:
            raise ValueError("the stream broke")

    def end(self, data: bytes) -> None:
        self.calls.append(("end", data))

    def body(self) -> bytes:
        return b"".join(data for name, data in self.calls if isinstance(data, bytes))


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n",
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabc",  # ended by the close
    ],
)
def test_a_stream_takes_the_body_as_it_comes(answer: bytes) -> None:
    rest = b"2\r\nde\r\n0\r\n\r\n" if b"chunked" in answer else b"de"

    async def test(url: str) -> None:
        pool = UpstreamPool()
        taker = Taker()
        connection = await pool.post(Endpoint(url, {}), b"{}", 5, taker)
        assert connection.status == 200 and connection.streaming
        await connection.finished()
        connection.release()
        assert taker.calls[0] == ("begin", 200) and taker.calls[-1][0] == "end"
        assert taker.body() == b"abcde"
        await pool.aclose()

    _run(_answering(answer, rest), test)


def test_a_stream_leaves_what_it_does_not_take_to_be_read() -> None:
    async def test(url: str) -> None:
        pool = UpstreamPool()
        taker = Taker()
        connection = await pool.post(Endpoint(url, {}), b"{}", 5, taker)
        assert connection.status == 503 and not connection.streaming
        assert await connection.read() == b"busy"
        connection.release()
        assert taker.calls == [("begin", 503)]
        await pool.aclose()

    _run(_answering(b"HTTP/1.1 503 Busy\r\ncontent-length: 4\r\n\r\nbusy"), test)


@pytest.mark.parametrize("failure", ["upstream", "stream"])
def test_a_stream_broken_off_raises_from_finished(failure: str) -> None:
    async def test(url: str) -> None:
        pool = UpstreamPool()
        taker = Taker(fail_on=b"bad" if failure == "stream" else b"")
        connection = await pool.post(Endpoint(url, {}), b"{}", 5, taker)
        error = ValueError if failure == "stream" else UpstreamError
        with pytest.raises(error):
            await connection.finished()
        connection.release()
        assert "end" not in [name for name, _ in taker.calls]
        await pool.aclose()

    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"
    _run(_answering(head, b"3\r\nbad\r\n"), test)  # closed without the last chunk


def test_a_connection_cut_mid_body_is_an_upstream_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()
        writer.close()

    async def test(url: str) -> None:
        pool = UpstreamPool()
        connection = await pool.post(Endpoint(url, {}), b"{}", 5)
        with pytest.raises(UpstreamError, match="closed the connection"):
            await connection.read()
        connection.release()
        await pool.aclose()

    _run(handler, test)


def test_malformed_response_and_refused_connection_are_upstream_errors() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    async def test(url: str) -> None:
        pool = UpstreamPool()
        with pytest.raises(UpstreamError, match="malformed HTTP response"):
            await pool.post(Endpoint(url, {}), b"{}", 5)
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        with pytest.raises(UpstreamError, match=f"could not connect to 127.0.0.1:{port}"):
            await pool.post(Endpoint(f"http://127.0.0.1:{port}/v1", {}), b"{}", 5)
        await pool.aclose()

    _run(handler, test)
