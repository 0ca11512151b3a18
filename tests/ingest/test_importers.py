"""Importers: τ-bench runs, OpenAI-style transcripts and OTLP JSON files become the events a
contract can judge; everything they cannot represent is counted, and importing again gives the
same events (so the ledger stores nothing twice)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from raas.core.events import (
    ConversationClosed,
    ConversationStarted,
    Handoff,
    Message,
    ReviewVerdict,
    ToolCall,
)
from raas.ingest.importers import (
    ImportFileError,
    import_openai_jsonl,
    import_otlp_json,
    import_tau_bench,
)
from raas.ledger.store import MemoryLedger

CASES = Path(__file__).resolve().parents[1] / "cases"
TAU_BENCH = CASES / "importers" / "tau-bench-retail.json"
TRANSCRIPTS = CASES / "importers" / "transcripts.jsonl"
OTLP = CASES / "otlp" / "genai-traces.json"


def test_tau_bench_runs_become_conversations_with_handoffs_and_verdicts() -> None:
    imported = import_tau_bench(TAU_BENCH.read_bytes(), tenant="acme")
    by_conversation: dict[str, list[object]] = {}
    for event in imported.events:
        by_conversation.setdefault(event.conversation, []).append(event.data)
    assert sorted(by_conversation) == ["tau-bench-0-0", "tau-bench-1-0", "tau-bench-1-1"]
    solved = by_conversation["tau-bench-0-0"]
    assert solved[0] == ConversationStarted(channel="chat")
    assert solved[1] == Message(
        role="customer", text="Hi, I want to exchange the keyboard from my last order."
    )
    # A tool result starting with "Error" makes its call not ok.
    assert [data for data in solved if isinstance(data, ToolCall)] == [
        ToolCall(name="find_user_id_by_email"),
        ToolCall(name="get_order_details", ok=False),
        ToolCall(name="exchange_delivered_order_items"),
    ]
    assert solved[-2] == ReviewVerdict(passed=True, reviewer="tau-bench", note="reward 1.0")
    assert solved[-1] == ConversationClosed(reason="end of run")
    handed_off = by_conversation["tau-bench-1-0"]
    handoffs = [data for data in handed_off if isinstance(data, Handoff)]
    assert handoffs == [
        Handoff(
            context_passed=True,
            reason="Customer wants a cash refund for order #W5556677; "
            "policy allows only the original method.",
        )
    ]
    assert ReviewVerdict(passed=False, reviewer="tau-bench", note="reward 0.0") in handed_off
    customers = {event.conversation: event.customer for event in imported.events}
    assert customers == {
        "tau-bench-0-0": "yusuf_rossi_9620",
        "tau-bench-1-0": "mei_kovacs_8020",
        "tau-bench-1-1": "tau-bench-task-1",
    }
    assert imported.warnings == {
        "run without times: laid out from --start, one second a message": 3,
        "system message (instructions are not events)": 2,
        "assistant turn: no model, tokens or cost, no model call": 9,
        "run without info.task.user_id: the task names the customer": 1,
        "message part that is not text (image, audio, file)": 1,
        "tool call without a result: recorded as ok": 1,
    }
    first = imported.events[0]
    assert first.time == datetime(2026, 1, 1, tzinfo=UTC)
    assert first.id == "tau-bench:0:0:0"


def test_importing_the_same_file_again_stores_nothing_twice() -> None:
    ledger = MemoryLedger()
    first = import_tau_bench(TAU_BENCH.read_bytes(), tenant="acme")
    again = import_tau_bench(TAU_BENCH.read_bytes(), tenant="acme")
    assert again == first
    assert ledger.append(first.events).stored == len(first.events)
    receipt = ledger.append(again.events)
    assert (receipt.stored, receipt.duplicates) == (0, len(first.events))


def test_openai_transcripts_one_conversation_a_line() -> None:
    imported = import_openai_jsonl(TRANSCRIPTS.read_bytes(), tenant="acme")
    conversations = {event.conversation for event in imported.events}
    assert conversations == {"chat-100", "line-1", "chat-102"}
    chat = [event for event in imported.events if event.conversation == "chat-100"]
    assert [event.data for event in chat] == [
        ConversationStarted(channel="chat"),
        Message(role="customer", text="Reset my password please"),
        Message(role="ai", text="Done: check your email."),
        ConversationClosed(reason="end of transcript"),
    ]
    assert chat[0].time == datetime.fromtimestamp(1793700000, UTC)
    assert {event.customer for event in chat} == {"cust-1"}
    handed_off = [event.data for event in imported.events if event.conversation == "line-1"]
    assert Handoff(context_passed=False) in handed_off
    assert imported.warnings == {
        "system message (instructions are not events)": 1,
        "assistant turn: no model, tokens or cost, no model call": 2,
        "transcript without id: its line number names it": 1,
        "transcript without customer: the conversation names the customer": 1,
        "transcript without `created`: laid out from --start": 1,
        "line that is not JSON": 1,
        "message role 'developer'": 1,
    }


def test_otlp_json_file_as_one_document_or_one_a_line() -> None:
    document = OTLP.read_bytes()
    one = import_otlp_json(document, tenant="acme")
    assert len(one.events) == 3
    assert one.warnings == {
        "span skipped: operation 'invoke_agent' is neither a model call nor a tool call": 1,
        "span skipped: not a GenAI span: no gen_ai.operation.name": 1,
        "span skipped: no gen_ai.conversation.id": 1,
        "span stored with a warning: no raas.cost and no price for model 'claude-haiku': cost 0": 1,
    }
    compact = b" ".join(document.split())
    two = import_otlp_json(compact + b"\n" + compact + b"\n", tenant="acme")
    assert two.events == one.events + one.events
    assert two.warnings["span skipped: no gen_ai.conversation.id"] == 2


@pytest.mark.parametrize(
    ("importer", "body", "reason"),
    [
        (import_tau_bench, b"{", "not readable as τ-bench results, nothing imported: not JSON"),
        (import_tau_bench, b'{"runs": []}', "the top level must be a list of runs"),
        (import_otlp_json, b'{"resourceSpans": 1}', "not readable as OTLP JSON"),
    ],
)
def test_unreadable_files_are_refused_whole(importer: object, body: bytes, reason: str) -> None:
    with pytest.raises(ImportFileError, match=reason):
        importer(body, tenant="acme")  # type: ignore[operator]
