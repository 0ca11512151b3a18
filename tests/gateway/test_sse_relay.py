"""The gateway's SSE relay: whole events pass on unchanged whatever the read boundaries, with LF
or CRLF line ends; usage is read from the one event that carries it, and the usage-only event
the gateway asked for is dropped unless the agent asked for it too."""

from __future__ import annotations

import pytest

from raas.gateway.app import _SseRelay

CONTENT = b'data: {"choices":[{"index":0,"delta":{"content":"%b"}}]}'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}'
DONE = b"data: [DONE]"


def _stream(end: bytes) -> list[bytes]:
    return [CONTENT % b"Hel" + end, CONTENT % b"lo" + end, USAGE + end, DONE + end]


def _relay(data: bytes, keep_usage: bool, size: int) -> tuple[bytes, _SseRelay]:
    written: list[bytes] = []
    relay = _SseRelay(keep_usage, written.append)
    for start in range(0, len(data), size):
        relay.pass_on(data[start : start + size])
    assert b"" not in written
    return b"".join(written) + relay.finish(), relay


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\r\n"])
@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_events_pass_whole_and_usage_is_read(end: bytes, size: int) -> None:
    events = _stream(end)
    kept, relay = _relay(b"".join(events), True, size)
    assert kept == b"".join(events)
    assert relay.usage == {"prompt_tokens": 7, "completion_tokens": 2}
    dropped, relay = _relay(b"".join(events), False, size)
    assert dropped == b"".join(event for event in events if b"usage" not in event)
    assert relay.usage == {"prompt_tokens": 7, "completion_tokens": 2}
    assert relay.text() == "Hello"


def test_without_usage_the_text_is_read_for_counting() -> None:
    data = CONTENT % b"one " + b"\n\n" + b": a comment\n\n" + CONTENT % b"two" + b"\n\n" + DONE
    out, relay = _relay(data + b"\n\n", False, 5)
    assert out == data + b"\n\n"
    assert relay.usage is None
    assert relay.text() == "one two"


def test_a_delta_that_mentions_usage_is_not_taken_for_it() -> None:
    data = CONTENT % b'the word \\"usage\\"' + b"\n\n" + b'data: {"usage":null}\n\n'
    out, relay = _relay(data, False, 10_000)
    assert out == data
    assert relay.usage is None


def test_an_empty_event_at_the_start_passes() -> None:
    out, relay = _relay(b"\n\n" + USAGE + b"\n\n", True, 3)
    assert out == b"\n\n" + USAGE + b"\n\n"
    assert relay.usage == {"prompt_tokens": 7, "completion_tokens": 2}


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\r\n"])
@pytest.mark.parametrize("keep_usage", [True, False])
def test_any_two_reads_relay_the_same_events(end: bytes, keep_usage: bool) -> None:
    # Wherever the one read from the upstream ends and the next begins (the usage event alone,
    # last of a read with content events before it, or cut), the same bytes go on.
    events = _stream(end)
    data = b"".join(events)
    expected = b"".join(event for event in events if keep_usage or b"usage" not in event)
    for cut in range(len(data) + 1):
        written: list[bytes] = []
        relay = _SseRelay(keep_usage, written.append)
        for piece in (data[:cut], data[cut:]):
            if piece:
                relay.pass_on(piece)
        assert b"".join(written) + relay.finish() == expected, cut
        assert relay.usage == {"prompt_tokens": 7, "completion_tokens": 2}
