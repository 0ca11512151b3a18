"""The gateway end to end over real HTTP: a test upstream on a free port, the gateway in front of
it on its own HTTP server, an httpx client as the agent, and the ledger read back afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from gateway_upstream import SLOW_SECONDS, FakeUpstream, GatewayThread, ServerThread

from raas.core.events import Event, Handoff, ModelCall, RouteDecision
from raas.gateway import build_gateway, parse_tier_file
from raas.ledger.sqlite import SqliteLedger

IN_PRICE = "0.000001"
OUT_PRICE = "0.000002"


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeUpstream, str]]:
    app = FakeUpstream()
    with ServerThread(app, lifespan="off") as server:
        yield app, server.url + "/v1"


def _tiers(base: str, small: str, large: str = "ok", **router: Any) -> dict[str, Any]:
    def tier(name: str, model: str, timeout: float, price: str) -> dict[str, Any]:
        return {
            "name": name,
            "upstream": base,
            "model": model,
            "input_token_price": price,
            "output_token_price": OUT_PRICE,
            "timeout": timeout,
        }

    return {
        "tiers": [
            tier("small", small, 0.5, IN_PRICE),
            tier("large", large, 5, "0.00001"),
            {"name": "human", "kind": "human", "interaction_cost": "5", "success": 0.99},
        ],
        "router": {
            "target": 0.8,
            "guardrails": [{"name": "legal", "tier": "human", "keywords": ["lawsuit"]}],
            **router,
        },
    }


class Run:
    """A gateway serving one tier file for one test; `events` after the block."""

    def __init__(self, tmp_path: Path, tiers: dict[str, Any]) -> None:
        self.ledger = SqliteLedger(tmp_path / "ledger.db")
        self.server = GatewayThread(build_gateway(parse_tier_file(tiers), self.ledger))
        self.client: httpx.Client

    def __enter__(self) -> Run:
        self.server.__enter__()
        self.client = httpx.Client(base_url=self.server.url, timeout=10)
        return self

    def __exit__(self, *exception: object) -> None:
        self.client.close()
        self.server.__exit__()

    def chat(self, text: str, conversation: str = "c1", **body: Any) -> httpx.Response:
        return self.client.post(
            "/v1/chat/completions",
            json={"model": "any", "messages": [{"role": "user", "content": text}], **body},
            headers={"X-Raas-Conversation": conversation, "X-Raas-Tenant": "acme"},
        )

    def events(self, tenant: str = "acme") -> list[Event]:
        return [stored.event for stored in self.ledger.iter_events(tenant)]


def _sse(response: httpx.Response) -> list[Any]:
    out: list[Any] = []
    for block in response.text.split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: ") :]
            out.append(data if data == "[DONE]" else msgspec.json.decode(data))
    return out


def _decision(event: Event) -> RouteDecision:
    assert isinstance(event.data, ModelCall | Handoff)
    assert event.data.decision is not None
    return event.data.decision


def test_plain_completion_goes_to_the_cheapest_tier_and_is_accounted(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> None:
    with Run(tmp_path, _tiers(upstream[1], "ok")) as run:
        response = run.chat("where is my parcel", metadata={"intent": "tracking"})
        models = run.client.get("/v1/models").json()
    assert response.status_code == 200
    assert response.headers["x-raas-tier"] == "small"
    assert response.json()["choices"][0]["message"]["content"] == "echo: where is my parcel"
    assert [model["id"] for model in models["data"]] == ["small", "large", "human"]
    assert "metadata" not in upstream[0].bodies[-1]
    (event,) = run.events()
    call = event.data
    assert isinstance(call, ModelCall)
    assert (call.tier, call.model, call.input_tokens, call.output_tokens) == ("small", "ok", 11, 5)
    assert call.cost == Decimal(IN_PRICE) * 11 + Decimal(OUT_PRICE) * 5
    assert event.conversation == "c1" and event.intent == "tracking" and event.customer == "c1"
    decision = _decision(event)
    assert (decision.tier, decision.rule, decision.attempt) == ("small", "only_tier", 1)
    assert decision.policy == "target 0.8" and event.subject is None
    assert call.error is None and not call.usage_counted


def test_streaming_relays_sse_and_records_usage_and_first_token(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> None:
    with Run(tmp_path, _tiers(upstream[1], "ok")) as run:
        response = run.chat("hello there", stream=True)
        with_usage = run.chat("again", stream=True, stream_options={"include_usage": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = _sse(response)
    assert chunks[-1] == "[DONE]"
    text = "".join(
        chunk["choices"][0]["delta"].get("content", "") for chunk in chunks[:-1] if chunk["choices"]
    )
    assert text == "echo: hello there"
    assert all(chunk == "[DONE]" or "usage" not in chunk for chunk in chunks)  # not asked for
    assert any(chunk != "[DONE]" and "usage" in chunk for chunk in _sse(with_usage))
    first, second = (event.data for event in run.events())
    assert isinstance(first, ModelCall) and isinstance(second, ModelCall)
    assert (first.input_tokens, first.output_tokens) == (11, 3)
    assert first.time_to_first_token_ms is not None
    assert first.time_to_first_token_ms <= first.latency_ms


def test_an_agent_leaving_mid_stream_still_gets_the_call_accounted(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> None:
    with Run(tmp_path, _tiers(upstream[1], "drip")) as run:
        body = {
            "model": "any",
            "stream": True,
            "messages": [{"role": "user", "content": "a b c d"}],
        }
        headers = {"X-Raas-Conversation": "c1", "X-Raas-Tenant": "acme"}
        with run.client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as left:
            first = next(left.iter_bytes())
        assert first.startswith(b"data: ")
        after = run.chat("still there?", conversation="c2")  # the gateway goes on serving
    assert after.status_code == 200
    (left_call,) = (event.data for event in run.events() if event.conversation == "c1")
    assert isinstance(left_call, ModelCall)
    # The upstream's answer was read to its end (with its usage) after the agent left.
    assert left_call.error is None and left_call.output_tokens == 5


def test_an_upstream_breaking_off_mid_stream_is_told_and_accounted(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> None:
    with Run(tmp_path, _tiers(upstream[1], "cut")) as run:
        response = run.chat("one two three", stream=True)
        after = run.chat("and now?", stream=True)
    chunks = _sse(response)
    assert chunks[0]["choices"][0]["delta"]["content"] == "echo:"
    assert chunks[-1]["error"]["type"] == "upstream_error"  # what was relayed, then the break
    assert after.headers["x-raas-tier"] == "large"  # the episode moved up
    broken, served = (event.data for event in run.events())
    assert isinstance(broken, ModelCall) and isinstance(served, ModelCall)
    assert broken.tier == "small" and broken.error is not None
    assert broken.error.endswith("mid-stream") and broken.time_to_first_token_ms is not None
    assert served.tier == "large" and served.error is None


@pytest.mark.parametrize("stream", [False, True])
def test_no_usage_from_upstream_means_tokens_are_counted(
    tmp_path: Path, upstream: tuple[FakeUpstream, str], stream: bool
) -> None:
    with Run(tmp_path, _tiers(upstream[1], "nousage")) as run:
        response = run.chat("count these words please", stream=stream)
    assert response.status_code == 200
    (event,) = run.events()
    call = event.data
    assert isinstance(call, ModelCall)
    # A token per four characters of a word, one per punctuation mark, four per message.
    assert call.input_tokens == 4 + 2 + 2 + 2 + 2
    assert call.output_tokens == 1 + 1 + 2 + 2 + 2 + 2  # "echo: count these words please"
    assert call.usage_counted and call.error is None


@pytest.mark.parametrize("stream", [False, True])
def test_failing_tier_falls_back_and_the_episode_stays_up(
    tmp_path: Path, upstream: tuple[FakeUpstream, str], stream: bool
) -> None:
    app, base = upstream
    before = app.calls["fail"]
    with Run(tmp_path, _tiers(base, "fail")) as run:
        first = run.chat("first", stream=stream)
        second = run.chat("second", stream=stream)  # same conversation: straight to large
        other = run.chat("other", conversation="c2", stream=stream)  # a new episode tries small
    assert first.status_code == second.status_code == 200
    assert first.headers["x-raas-tier"] == second.headers["x-raas-tier"] == "large"
    assert app.calls["fail"] - before == 2
    assert other.headers["x-raas-tier"] == "large"
    calls = [event for event in run.events() if isinstance(event.data, ModelCall)]
    tiers = [(event.conversation, event.data.tier) for event in calls]
    assert tiers == [
        ("c1", "small"),
        ("c1", "large"),
        ("c1", "large"),
        ("c2", "small"),
        ("c2", "large"),
    ]
    assert calls[0].data.error == "HTTP 500" and _decision(calls[0]).attempt == 1
    retried = _decision(calls[1])
    assert retried.attempt == 2 and retried.excluded == ("small",) and retried.tier == "large"
    assert calls[1].data.error is None
    assert calls[0].data.output_tokens == 0


@pytest.mark.parametrize("stream", [False, True])
def test_a_tier_that_times_out_falls_back(
    tmp_path: Path, upstream: tuple[FakeUpstream, str], stream: bool
) -> None:
    with Run(tmp_path, _tiers(upstream[1], "slow")) as run:
        response = run.chat("are you there", stream=stream)
    assert response.status_code == 200
    assert response.headers["x-raas-tier"] == "large"
    timed_out, served = run.events()
    assert isinstance(timed_out.data, ModelCall) and timed_out.data.error == "timeout"
    # Timed out at the tier's 0.5 s, not after the slow upstream's answer.
    assert 450 <= timed_out.data.latency_ms < SLOW_SECONDS * 1000
    assert isinstance(served.data, ModelCall) and served.data.tier == "large"


def test_every_tier_failing_is_a_502(tmp_path: Path, upstream: tuple[FakeUpstream, str]) -> None:
    tiers = _tiers(upstream[1], "fail", "fail")
    tiers["tiers"].pop()  # no human tier to end at
    tiers["router"]["guardrails"] = []
    with Run(tmp_path, tiers) as run:
        response = run.chat("hello")
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_error"
    assert len(run.events()) == 2


@pytest.mark.parametrize("stream", [False, True])
def test_guardrail_hands_off_to_a_human_with_context(
    tmp_path: Path, upstream: tuple[FakeUpstream, str], stream: bool
) -> None:
    with Run(tmp_path, _tiers(upstream[1], "ok")) as run:
        response = run.chat("I will file a lawsuit", stream=stream)
    assert response.status_code == 200
    assert response.headers["x-raas-handoff"] == "true"
    if stream:
        chunks = _sse(response)
        assert chunks[-1] == "[DONE]"
        assert chunks[0]["raas"]["handoff"] is True
        assert "human colleague" in chunks[0]["choices"][0]["delta"]["content"]
    else:
        body = response.json()
        assert body["raas"]["handoff"] is True and body["raas"]["tier"] == "human"
        assert "human colleague" in body["choices"][0]["message"]["content"]
    (event,) = run.events()
    assert isinstance(event.data, Handoff) and event.data.context_passed
    decision = _decision(event)
    assert (decision.rule, decision.guardrail, decision.tier) == ("guardrail", "legal", "human")


def test_the_router_objective_picks_the_tier(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> None:
    tiers = _tiers(upstream[1], "ok")
    tiers["tiers"][0]["success"] = 0.6
    tiers["tiers"][1]["success"] = 0.9
    with Run(tmp_path, tiers) as run:
        response = run.chat("hello")
    assert response.headers["x-raas-tier"] == "large"
    (event,) = run.events()
    decision = _decision(event)
    assert decision.rule == "target" and decision.tier == "large"
    assert decision.probabilities == {
        "small": Decimal("0.6"),
        "large": Decimal("0.9"),
        "human": Decimal("0.99"),
    }


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, {}, "conversation"),
        ({"messages": []}, {"X-Raas-Conversation": "c"}, "messages"),
        (
            {"messages": [{"role": "user"}], "metadata": []},
            {"X-Raas-Conversation": "c"},
            "metadata",
        ),
    ],
)
def test_bad_requests_name_the_field(
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
    body: dict[str, Any],
    headers: dict[str, str],
    field: str,
) -> None:
    with Run(tmp_path, _tiers(upstream[1], "ok")) as run:
        response = run.client.post("/v1/chat/completions", json=body, headers=headers)
        not_json = run.client.post("/v1/chat/completions", content=b"{", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == field
    assert not_json.status_code == 400
    assert run.events("default") == []
