"""The gateway's HTTP/1.1 server over raw sockets, with a handler that echoes: keep-alive,
pipelined requests answered in order, chunked streaming (the head held back until the first
piece), HTTP/1.0 bodies ended by the close, 100-continue, malformed and oversized requests, a
failing handler, a request that trickles in too slowly, an idle connection closed, and the
requests in flight finishing when the server stops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from raas.gateway import server as server_module
from raas.gateway.server import BODY_BYTES_MAX, Exchange, GatewayServer


class Echo:
    """Answers `/stream` in three pieces, `/fail` by raising, `/slow` after a while, and any
    other path with its method, path and body."""

    def __init__(self) -> None:
        self.started = self.stopped = False
        self.release = asyncio.Event()

    async def startup(self) -> None:
        self.started = True

    async def shutdown(self) -> None:
        self.stopped = True

    async def handle(self, exchange: Exchange) -> None:
        if exchange.path == b"/stream":
            exchange.start(200, [(b"content-type", b"text/event-stream")])
            exchange.write(b"one ")
            await asyncio.sleep(0)
            exchange.write(b"two ")
            exchange.end(b"three")
        elif exchange.path == b"/fail":
            raise RuntimeError("the handler broke")
        elif exchange.path == b"/slow":
            await self.release.wait()
            exchange.respond(200, b"late", [])
        else:
            body = b"%b %b %b" % (exchange.method, exchange.path, exchange.body)
            exchange.respond(200, body, [(b"x-echo", b"yes")])


Test = Callable[[GatewayServer, Echo, int], Awaitable[None]]


def _run(test: Test) -> list[BaseException]:
    failures: list[BaseException] = []

    async def main() -> None:
        echo = Echo()
        server = GatewayServer(echo, failures.append)
        await server.start("127.0.0.1", 0)
        try:
            await test(server, echo, server.port)
        finally:
            await server.stop(grace_seconds=1)
        assert echo.started and echo.stopped

    asyncio.run(main())
    return failures


async def _exchange(port: int, data: bytes, until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(-1), 5) if until_close else b""
    writer.close()
    return answer


def _post(path: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return b"POST %b HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n%b\r\n%b" % (
        path,
        len(body),
        extra,
        body,
    )


def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    async def test(server: GatewayServer, echo: Echo, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_post(b"/a?q=1", b"first") + _post(b"/b", b"second"))
        answers = b""
        while answers.count(b"HTTP/1.1 200") < 2 or not answers.endswith(b"second"):
            answers += await asyncio.wait_for(reader.read(65536), 5)
        assert answers.index(b"POST /a first") < answers.index(b"POST /b second")
        assert b"x-echo: yes\r\n" in answers and b"date: " in answers
        assert b"connection: close" not in answers
        writer.write(b"GET /c HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        last = await asyncio.wait_for(reader.read(-1), 5)  # the server closes after it
        assert last.endswith(b"GET /c ") and b"connection: close\r\n" in last
        writer.close()

    assert _run(test) == []


def test_a_stream_is_chunked_with_the_head_sent_with_its_first_piece() -> None:
    async def test(server: GatewayServer, echo: Echo, port: int) -> None:
        answer = await _exchange(port, _post(b"/stream", b"", b"connection: close\r\n"))
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head and b"content-length" not in head
        assert body == b"4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n"

    assert _run(test) == []


def test_an_http_10_stream_ends_with_the_connection() -> None:
    async def test(server: GatewayServer, echo: Echo, port: int) -> None:
        answer = await _exchange(port, b"POST /stream HTTP/1.0\r\ncontent-length: 0\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"chunked" not in head and b"connection: close" in head
        assert body == b"one two three"

    assert _run(test) == []


def test_expect_100_continue_is_answered_before_the_body() -> None:
    async def test(server: GatewayServer, echo: Echo, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /e HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n"
        )
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == (
            b"HTTP/1.1 100 Continue\r\n\r\n"
        )
        writer.write(b"body")
        answer = await asyncio.wait_for(reader.readuntil(b"POST /e body"), 5)
        assert answer.startswith(b"HTTP/1.1 200 OK")
        writer.close()

    assert _run(test) == []


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"POST /x HTTP/1.1\r\ncontent-length: %d\r\n\r\n" % (BODY_BYTES_MAX + 1), b"413"),
    ],
)
def test_bad_requests_are_refused_and_the_connection_closed(
    request_bytes: bytes, status: bytes
) -> None:
    async def test(server: GatewayServer, echo: Echo, port: int) -> None:
        answer = await _exchange(port, request_bytes)
        assert answer.startswith(b"HTTP/1.1 " + status)

    assert _run(test) == []


def test_a_chunked_body_past_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # A chunked body states no length up front: it is counted as it arrives.
    monkeypatch.setattr(server_module, "BODY_BYTES_MAX", 100)

    async def test(server: GatewayServer, echo: Echo, port: int) -> None:
        head = (
            b"POST /x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        fits = await _exchange(port, head + b"40\r\n" + b"a" * 64 + b"\r\n0\r\n\r\n")
        assert fits.startswith(b"HTTP/1.1 200") and fits.endswith(b"POST /x " + b"a" * 64)
        chunk = b"40\r\n" + b"a" * 64 + b"\r\n"
        answer = await _exchange(port, head + chunk + chunk + b"0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 413")

    assert _run(test) == []


def test_a_request_not_received_in_time_is_answered_408(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "REQUEST_SECONDS", 0.2)

    async def test(server: GatewayServer, echo: Echo, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
        answer = await asyncio.wait_for(reader.read(-1), 5)  # the server closes after its 408
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408")
        # A request that is received whole in time is answered as before.
        assert (await _exchange(port, _post(b"/x", b"abc", b"connection: close\r\n"))).endswith(
            b"POST /x abc"
        )

    assert _run(test) == []


def test_a_connection_is_closed_once_idle_for_the_keep_alive_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_module, "KEEP_ALIVE_SECONDS", 0.3)

    async def test(server: GatewayServer, echo: Echo, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # Requests closer together than the keep-alive time, for longer than it: kept open.
        for number in range(4):
            writer.write(_post(b"/x", b"%d" % number))
            await asyncio.wait_for(reader.readuntil(b"POST /x %d" % number), 5)
            await asyncio.sleep(0.15)
        # Then idle: the server closes it.
        assert await asyncio.wait_for(reader.read(-1), 5) == b""
        writer.close()

    assert _run(test) == []


def test_an_upgrade_is_ignored_the_request_answered_and_the_connection_closed() -> None:
    async def test(server: GatewayServer, echo: Echo, port: int) -> None:
        upgrade = b"GET /u HTTP/1.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
        answer = await _exchange(port, upgrade + b"more bytes")
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"GET /u ")

    assert _run(test) == []


def test_a_failing_handler_answers_500_and_is_reported() -> None:
    async def test(server: GatewayServer, echo: Echo, port: int) -> None:
        answer = await _exchange(port, _post(b"/fail", b""))
        assert answer.startswith(b"HTTP/1.1 500")

    (failure,) = _run(test)
    assert str(failure) == "the handler broke"


def test_stopping_lets_a_request_in_flight_finish() -> None:
    async def test(server: GatewayServer, echo: Echo, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_post(b"/slow", b""))
        await writer.drain()
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(server.stop(grace_seconds=5))
        await asyncio.sleep(0.05)
        assert not stopping.done()
        echo.release.set()
        answer = await asyncio.wait_for(reader.read(-1), 5)
        assert answer.endswith(b"late") and b"connection: close" not in answer
        await stopping
        writer.close()

    assert _run(test) == []
