"""`raas router train --db`: examples from the ledger's final episodes, labelled by the outcome
the contract judged, with the tier that served them. What would break: learning from episodes
still open, crediting a small tier for an answer that was escalated, or reading text the
ledger holds only as a commitment as if it were the message."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from factories import NOVEMBER, SOURCE, conversation
from raas.cli.main import main
from raas.core.contract import load_contract
from raas.core.events import Event, Message, ModelCall, ResolutionClaimed, make_event
from raas.ledger.sqlite import SqliteLedger
from raas.ledger.store import MemoryLedger
from raas.router.features import FeatureConfig
from raas.router.ledger import examples_from_ledger

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "examples" / "contracts" / "acme-support.yaml"
LATER = NOVEMBER + timedelta(days=30)  # every window of the workload has closed by then


def escalated_conversation(
    conversation_id: str, customer: str, *, second_turn: bool = False
) -> list[Event]:
    """The small tier answers, its answer fails a check, the large tier answers at once; with
    `second_turn`, the customer asks again and the small tier answers."""
    events: list[Event] = []
    clock = NOVEMBER + timedelta(days=3)

    def add(data: object) -> None:
        nonlocal clock
        events.append(
            make_event(
                data,  # type: ignore[arg-type]
                id=f"{conversation_id}-{len(events)}",
                source=SOURCE,
                time=clock,
                tenant="acme",
                customer=customer,
                conversation=conversation_id,
                intent="refund",
            )
        )
        clock += timedelta(minutes=1)

    add(Message(role="customer", text="I want my money back for the broken lamp"))
    for tier in ("small", "large"):
        add(
            ModelCall(
                tier=tier, model=f"{tier}-model", input_tokens=10, output_tokens=5,
                latency_ms=100, cost=Decimal("0.01"),
            )
        )  # fmt: skip
    add(Message(role="ai", text="Refund issued."))
    if second_turn:
        add(Message(role="customer", text="And the shipping fee?"))
        add(
            ModelCall(
                tier="small", model="small-model", input_tokens=10, output_tokens=5,
                latency_ms=100, cost=Decimal("0.01"),
            )
        )  # fmt: skip
        add(Message(role="ai", text="Refunded too."))
    add(ResolutionClaimed(by="ai"))
    return events


def ledger_with_workload() -> MemoryLedger:
    ledger = MemoryLedger()
    ledger.append(conversation("c-1", customer="ann", confirm=True, tier="small"))
    ledger.append(conversation("c-2", customer="bob", confirm=False, tier="large"))
    ledger.append(conversation("c-3", customer="cy", handoff="with"))  # no model call
    ledger.append(escalated_conversation("c-4", "dee"))
    return ledger


def test_examples_follow_outcomes_and_tiers() -> None:
    contract = load_contract(CONTRACT)
    examples, report = examples_from_ledger(
        ledger_with_workload(), contract, FeatureConfig(), as_of=LATER
    )
    labels = sorted((example.tier, example.resolved) for example in examples)
    # c-1 resolved on small; c-2 unresolved on large; c-4 resolved, but its small answer was
    # escalated at once, so small learns a failure and large the success
    assert labels == [("large", False), ("large", True), ("small", False), ("small", True)]
    assert report.without_model_call == 1
    assert report.escalated_calls == 1
    assert report.final == 3
    assert report.text_plain == 3  # the ledger discloses the text: read it, checked
    assert all(example.features.summary["text"] == "plain" for example in examples)


def test_episodes_still_open_are_left_out() -> None:
    contract = load_contract(CONTRACT)
    early = NOVEMBER + timedelta(hours=1)
    examples, report = examples_from_ledger(
        ledger_with_workload(), contract, FeatureConfig(), as_of=early
    )
    assert examples == []
    assert report.not_final == 3
    # by default, as of the last event: c-4 came three days later, so c-1 and c-2 (72-hour
    # windows from their answers) have closed and c-4's has not
    _, report = examples_from_ledger(ledger_with_workload(), contract, FeatureConfig())
    assert (report.final, report.not_final) == (2, 1)


def test_without_text_only_commitments_are_seen() -> None:
    contract = load_contract(CONTRACT)
    examples, report = examples_from_ledger(
        ledger_with_workload(), contract, FeatureConfig(), as_of=LATER, reveal_text=False
    )
    assert report.text_committed == 3 and report.text_plain == 0
    for example in examples:
        assert example.features.summary["text"] == "committed"
        assert example.features.summary["hashed_text_features"] == 0
        assert example.features.summary["intent"] == "refund"


def test_train_from_a_sqlite_ledger(tmp_path: Path) -> None:
    database = tmp_path / "raas.db"
    with SqliteLedger(database) as ledger:
        for events in (
            conversation("c-1", customer="ann", confirm=True),
            conversation("c-2", customer="bob", confirm=False, tier="large"),
            escalated_conversation("c-4", "dee"),
        ):
            ledger.append(events)
    out = tmp_path / "router.json"
    result = CliRunner().invoke(
        main,
        ["router", "train", "--db", str(database), "--contract", str(CONTRACT),
         "--as-of", "2026-12-15T00:00:00+00:00", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["source"] == "ledger"
    assert summary["report"]["final"] == 3
    assert set(summary["tiers"]) == {"small", "large"}
    assert out.is_file()


def test_each_turn_is_an_example_with_its_number_and_earlier_failures() -> None:
    ledger = MemoryLedger()
    ledger.append(escalated_conversation("c-5", "eve", second_turn=True))
    examples, report = examples_from_ledger(
        ledger, load_contract(CONTRACT), FeatureConfig(), as_of=LATER
    )
    seen = sorted(
        (
            example.features.summary["turn"],
            example.features.summary["earlier_failures"],
            example.tier,
            example.resolved,
            example.weight,
        )
        for example in examples
    )
    # turn 1: small escalated to large; turn 2: one failure behind it, small answered
    assert seen == [
        (1, 0, "large", True, 0.5),
        (1, 0, "small", False, 0.5),
        (2, 1, "small", True, 0.5),
    ]
    assert (report.final, report.turns, report.escalated_calls) == (1, 2, 1)
