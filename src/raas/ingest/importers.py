"""Importers: existing agent logs -> raas events, so past traffic can be judged under a proposed
contract before it is signed. Pure: a file's bytes in, events and counted warnings out.

- τ-bench results (Sierra's customer-service agent benchmark; the shape of `EnvRunResult` in
  its `tau_bench/types.py`): a JSON list of runs, each with `task_id`, `trial`, `reward`,
  `info` (`info.task.user_id` is the customer) and `traj`, OpenAI-style chat messages with tool
  calls. A `transfer_to_human_agents` call is a handoff; the reward becomes a review verdict
  (passed when it is 1).
- OpenAI-style chat transcripts as JSONL: one conversation a line, `{"messages": [...]}` with
  optional `id`, `customer` (or `user`) and `created` (unix seconds).
- OTLP JSON trace files: one ExportTraceServiceRequest, or one a line (as the OpenTelemetry
  Collector's file exporter writes them); see `raas.ingest.otlp`.

Whatever an importer cannot represent is counted under a warning naming it, never dropped
silently. Event ids come from the file's own identities (task, trial, line, message number), so
importing the same file again stores nothing twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec

from raas.core.events import (
    ConversationClosed,
    ConversationStarted,
    Event,
    EventData,
    Handoff,
    Message,
    ReviewVerdict,
    ToolCall,
    make_event,
)
from raas.errors import EventError, RaasError
from raas.ingest.otlp import OtlpError, convert_traces
from raas.ingest.validate import parse_event

HANDOFF_TOOL: Final = "transfer_to_human_agents"
TAU_BENCH_SOURCE: Final = "urn:raas:import:tau-bench"
OPENAI_JSONL_SOURCE: Final = "urn:raas:import:openai-jsonl"
# Runs without times are laid out from this moment: one hour a run, one second a message.
START_DEFAULT: Final = datetime(2026, 1, 1, tzinfo=UTC)
# τ-bench counts a run as solved when its reward is 1 (within this tolerance).
TAU_BENCH_SUCCESS_MIN: Final = 1.0 - 1e-6
TEXT_CHARACTERS_MAX: Final = 64_000
REASON_CHARACTERS_MAX: Final = 256


class ImportFileError(RaasError):
    """A file an importer cannot read at all (not JSON, not the expected shape)."""

    def __init__(self, file_kind: str, reason: str):
        self.file_kind = file_kind
        self.reason = reason
        super().__init__(f"not readable as {file_kind}, nothing imported: {reason}")


class Imported(msgspec.Struct, frozen=True, kw_only=True):
    """The events made from a file, and each thing not represented with how often it occurred."""

    events: list[Event]
    warnings: dict[str, int]


_encoder: Final = msgspec.json.Encoder()


class _Recorder:
    """Builds one conversation's events with deterministic ids and times, counting warnings."""

    def __init__(
        self,
        *,
        source: str,
        tenant: str,
        customer: str,
        conversation: str,
        start: datetime,
        id_prefix: str,
        events: list[Event],
        warnings: Counter[str],
    ) -> None:
        self.source = source
        self.tenant = tenant
        self.customer = customer
        self.conversation = conversation
        self.start = start
        self.id_prefix = id_prefix
        self.events = events
        self.warnings = warnings
        self.number = 0

    def add(self, data: EventData) -> None:
        event = make_event(
            data,
            id=f"{self.id_prefix}:{self.number}",
            source=self.source,
            time=self.start + timedelta(seconds=self.number),
            tenant=self.tenant,
            customer=self.customer,
            conversation=self.conversation,
        )
        self.number += 1
        try:
            self.events.append(parse_event(_encoder.encode(event)))
        except EventError as error:
            self.warnings[f"{type(data).__name__} not imported: {error.field} {error.reason}"] += 1

    def messages(self, messages: list[Any]) -> None:
        """OpenAI-style chat messages: user and assistant text, tool calls (a handoff tool call
        is a handoff), tool results folded into their call's `ok`."""
        results = {
            message.get("tool_call_id"): message.get("content")
            for message in messages
            if isinstance(message, dict) and message.get("role") == "tool"
        }
        for message in messages:
            if not isinstance(message, dict):
                self.warnings["a message that is not an object"] += 1
                continue
            role = message.get("role")
            if role == "tool":
                if message.get("tool_call_id") is None:
                    self.warnings["tool result without tool_call_id"] += 1
                continue
            if role == "system":
                self.warnings["system message (instructions are not events)"] += 1
                continue
            if role not in ("user", "assistant"):
                self.warnings[f"message role {str(role)[:40]!r}"] += 1
                continue
            text = _text_of(message.get("content"), self.warnings)
            if text:
                if len(text) > TEXT_CHARACTERS_MAX:
                    self.warnings["message text cut to 64,000 characters"] += 1
                    text = text[:TEXT_CHARACTERS_MAX]
                self.add(Message(role="customer" if role == "user" else "ai", text=text))
            calls = message.get("tool_calls") or []
            if role == "assistant" and not text and not calls:
                self.warnings["assistant message with neither text nor tool calls"] += 1
            if role == "assistant":
                self.warnings["assistant turn: no model, tokens or cost, no model call"] += 1
            for call in calls:
                self._tool_call(call, results)

    def _tool_call(self, call: Any, results: Mapping[Any, Any]) -> None:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            self.warnings["tool call without a function name"] += 1
            return
        name: str = function["name"]
        if name == HANDOFF_TOOL:
            summary = _arguments(function).get("summary")
            reason = summary[:REASON_CHARACTERS_MAX] if isinstance(summary, str) else None
            self.add(Handoff(context_passed=bool(reason), reason=reason or None))
            return
        result = results.get(call.get("id"))
        if result is None:
            self.warnings["tool call without a result: recorded as ok"] += 1
        ok = not (isinstance(result, str) and result.lstrip().lower().startswith("error"))
        self.add(ToolCall(name=name[:256], ok=ok))


def _text_of(content: Any, warnings: Counter[str]) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                warnings["message part that is not text (image, audio, file)"] += 1
        return "\n".join(texts)
    warnings["message content that is neither text nor parts"] += 1
    return ""


def _arguments(function: Mapping[str, Any]) -> dict[str, Any]:
    raw = function.get("arguments")
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            decoded = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return {}
        return decoded if isinstance(decoded, dict) else {}
    return {}


# -- τ-bench -----------------------------------------------------------------------------------


def import_tau_bench(body: bytes, *, tenant: str, start: datetime = START_DEFAULT) -> Imported:
    """τ-bench results -> events: one conversation per run (task and trial)."""
    try:
        runs = msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        raise ImportFileError("τ-bench results", f"not JSON: {error}") from None
    if not isinstance(runs, list):
        raise ImportFileError("τ-bench results", "the top level must be a list of runs")
    events: list[Event] = []
    warnings: Counter[str] = Counter()
    for position, run in enumerate(runs):
        if not isinstance(run, dict) or not isinstance(run.get("traj"), list):
            warnings["run without a `traj` list"] += 1
            continue
        task_id, trial = run.get("task_id", position), run.get("trial", 0)
        task = (run.get("info") or {}).get("task") or {}
        customer = task.get("user_id") if isinstance(task, dict) else None
        if not isinstance(customer, str) or not customer:
            warnings["run without info.task.user_id: the task names the customer"] += 1
            customer = f"tau-bench-task-{task_id}"
        warnings["run without times: laid out from --start, one second a message"] += 1
        recorder = _Recorder(
            source=TAU_BENCH_SOURCE,
            tenant=tenant,
            customer=customer,
            conversation=f"tau-bench-{task_id}-{trial}",
            start=start + timedelta(hours=position),
            id_prefix=f"tau-bench:{task_id}:{trial}",
            events=events,
            warnings=warnings,
        )
        recorder.add(ConversationStarted(channel="chat"))
        recorder.messages(run["traj"])
        reward = run.get("reward")
        if isinstance(reward, int | float) and not isinstance(reward, bool):
            recorder.add(
                ReviewVerdict(
                    passed=reward >= TAU_BENCH_SUCCESS_MIN,
                    reviewer="tau-bench",
                    note=f"reward {reward}",
                )
            )
        else:
            warnings["run without a numeric reward: no review verdict"] += 1
        recorder.add(ConversationClosed(reason="end of run"))
    return Imported(events=events, warnings=dict(warnings))


# -- OpenAI-style JSONL transcripts ----------------------------------------------------------------


def import_openai_jsonl(body: bytes, *, tenant: str, start: datetime = START_DEFAULT) -> Imported:
    """OpenAI-style transcripts, one conversation a line -> events."""
    events: list[Event] = []
    warnings: Counter[str] = Counter()
    for number, line in _lines(body):
        try:
            record = msgspec.json.decode(line)
        except msgspec.DecodeError:
            warnings["line that is not JSON"] += 1
            continue
        if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
            warnings["line without a `messages` list"] += 1
            continue
        conversation = record.get("id") or record.get("conversation_id")
        if not isinstance(conversation, str) or not conversation:
            warnings["transcript without id: its line number names it"] += 1
            conversation = f"line-{number}"
        customer = record.get("customer") or record.get("user")
        if not isinstance(customer, str) or not customer:
            warnings["transcript without customer: the conversation names the customer"] += 1
            customer = conversation
        created = record.get("created")
        if isinstance(created, int | float) and not isinstance(created, bool) and created >= 0:
            began = datetime.fromtimestamp(int(created), UTC)
        else:
            warnings["transcript without `created`: laid out from --start"] += 1
            began = start + timedelta(hours=number)
        recorder = _Recorder(
            source=OPENAI_JSONL_SOURCE,
            tenant=tenant,
            customer=customer,
            conversation=conversation,
            start=began,
            id_prefix=f"openai-jsonl:{conversation}",
            events=events,
            warnings=warnings,
        )
        recorder.add(ConversationStarted(channel="chat"))
        recorder.messages(record["messages"])
        recorder.add(ConversationClosed(reason="end of transcript"))
    return Imported(events=events, warnings=dict(warnings))


def _lines(body: bytes) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(body.splitlines()):
        if line.strip():
            yield number, line


# -- OTLP JSON files ---------------------------------------------------------------------------


def import_otlp_json(body: bytes, *, tenant: str) -> Imported:
    """OTLP JSON trace files -> events; spans skipped and defaults taken become warnings."""
    stripped = body.strip()
    try:
        documents = [stripped] if _is_one_document(stripped) else [b for _, b in _lines(body)]
        conversions = [convert_traces(doc, "application/json", tenant=tenant) for doc in documents]
    except OtlpError as error:
        raise ImportFileError("OTLP JSON", error.reason) from None
    events: list[Event] = []
    warnings: Counter[str] = Counter()
    for conversion in conversions:
        events += conversion.events
        for reason, count in conversion.skipped.items():
            warnings[f"span skipped: {reason}"] += count
        for warning, count in conversion.warnings.items():
            warnings[f"span stored with a warning: {warning}"] += count
    return Imported(events=events, warnings=dict(warnings))


def _is_one_document(body: bytes) -> bool:
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError:
        return False
    return True
