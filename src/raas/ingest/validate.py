"""The ingest boundary: bytes from the wire become typed raas events, or a list of every bad one.

A batch is all or nothing: one bad event rejects it, and the error names each bad event, the
field (a dotted path such as `data.cost`) and the reason, so a sender can fix them all at once.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from datetime import UTC
from typing import Any, Final

import msgspec

from raas.core.events import (
    DATA_TYPES,
    DISPUTE_CUSTOMER,
    NO_NUL_PATTERN,
    DisputeFiled,
    DisputeRuled,
    Event,
)
from raas.errors import BatchRejected, EventError

BATCH_EVENTS_MAX: Final = 10_000
BATCH_BYTES_MAX: Final = 16 * 1024 * 1024
# The `field` of errors about the request body as a whole, and about an event that is not an object.
BODY_FIELD: Final = "body"
EVENT_ROOT_FIELD: Final = "$"
# Long ids are echoed back cut to this length, so an error stays readable.
ECHOED_ID_CHARACTERS_MAX: Final = 256

_EVENT_TYPES_TEXT: Final = ", ".join(sorted(DATA_TYPES))


def _typed_envelope(
    type_name: str, data_class: type[msgspec.Struct], *, nul_checked: bool = True
) -> type[msgspec.Struct]:
    """A copy of `Event` whose `data` has this type's class and whose `type` is a msgspec tag.

    Generated from `Event`'s own fields so the two cannot drift apart; a tagged union of these
    decodes a whole batch, data included, in one pass of msgspec. With `nul_checked` False the
    attributes keep every constraint but the no-NUL pattern (see `parse_batch`).
    """
    hints = typing.get_type_hints(Event, include_extras=True)
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in msgspec.structs.fields(Event):
        if field.name == "type":
            continue
        annotation = data_class if field.name == "data" else hints[field.name]
        if not nul_checked:
            annotation = _without_nul_pattern(annotation)
        fields.append(
            (field.name, annotation) if field.required else (field.name, annotation, field.default)
        )
    config = Event.__struct_config__
    return msgspec.defstruct(
        f"_{data_class.__name__}Envelope" if nul_checked else f"_{data_class.__name__}NulFree",
        fields,
        kw_only=True,
        frozen=True,
        forbid_unknown_fields=config.forbid_unknown_fields,
        tag_field="type",
        tag=type_name,
        gc=config.gc,
    )


def _without_nul_pattern(annotation: Any) -> Any:
    """The annotation with the no-NUL pattern dropped from its msgspec constraints, if it has it
    (in an optional attribute too); every other constraint is kept."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metas = typing.get_args(annotation)
        kept = [
            _without_pattern(meta)
            if isinstance(meta, msgspec.Meta) and meta.pattern == NO_NUL_PATTERN
            else meta
            for meta in metas
        ]
        return typing.Annotated[(base, *kept)]  # built at run time
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.Union[tuple(_without_nul_pattern(a) for a in typing.get_args(annotation))]  # noqa: UP007
    return annotation


_META_CONSTRAINTS: Final = (
    "gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "tz", "title",
    "description", "examples", "extra_json_schema", "extra",
)  # fmt: skip


def _without_pattern(meta: msgspec.Meta) -> msgspec.Meta:
    kept = {name: getattr(meta, name) for name in _META_CONSTRAINTS}
    return msgspec.Meta(**{name: value for name, value in kept.items() if value is not None})


_ENVELOPES: Final = {
    _typed_envelope(type_name, data_class): type_name
    for type_name, data_class in DATA_TYPES.items()
}
_NUL_FREE_ENVELOPES: Final = {
    _typed_envelope(type_name, data_class, nul_checked=False): type_name
    for type_name, data_class in DATA_TYPES.items()
}
_TYPE_OF_ENVELOPE: Final[dict[type[msgspec.Struct], str]] = _ENVELOPES | _NUL_FREE_ENVELOPES
_AnyEnvelope: Any = typing.Union[tuple(_ENVELOPES)]  # noqa: UP007 (built at run time)
_AnyNulFreeEnvelope: Any = typing.Union[tuple(_NUL_FREE_ENVELOPES)]  # noqa: UP007
_DISPUTE_ENVELOPES: Final = frozenset(
    envelope
    for envelope, type_name in _TYPE_OF_ENVELOPE.items()
    if DATA_TYPES[type_name] in (DisputeFiled, DisputeRuled)
)
_batch_decoder: Final = msgspec.json.Decoder(list[_AnyEnvelope])
# A JSON text holds U+0000 only as the escape \u0000 (msgspec refuses raw control characters),
# so a body without that escape has no NUL anywhere: this decoder skips the no-NUL pattern,
# a regular expression run on every attribute of every event (measured: decoding a batch
# 4.2 -> 1.6 CPU-us an event).
_nul_free_batch_decoder: Final = msgspec.json.Decoder(list[_AnyNulFreeEnvelope])
_NUL_ESCAPE: Final = b"\\u0000"
_event_decoder: Final = msgspec.json.Decoder(_AnyEnvelope)
_nul_free_event_decoder: Final = msgspec.json.Decoder(_AnyNulFreeEnvelope)
_items_decoder: Final = msgspec.json.Decoder(list[msgspec.Raw])


class _IdOnly(msgspec.Struct):
    """Just enough of an event to name it in an error."""

    id: Any = None


_id_decoder: Final = msgspec.json.Decoder(_IdOnly)


def batch_json_schema(ref_template: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON Schema of a batch as a JSON array, and the components it refers to (by
    `ref_template`): what the HTTP API documents, derived from the decoder itself."""
    (schema,), components = msgspec.json.schema_components(
        [list[_AnyEnvelope]], ref_template=ref_template
    )
    schema["maxItems"] = BATCH_EVENTS_MAX
    return schema, components


def parse_batch(body: bytes, *, ndjson: bool = False) -> list[Event]:
    """A JSON array (or NDJSON, one event a line) of CloudEvents -> typed events, in order.

    Raises BatchRejected listing every bad event, or the one reason the body as a whole is refused
    (too large, not JSON, not an array).
    """
    if len(body) > BATCH_BYTES_MAX:
        _reject_body(f"is {len(body):,} bytes; a batch may hold at most {BATCH_BYTES_MAX:,} bytes")
    if ndjson:
        return _parse_lines(body)
    decoder = _batch_decoder if _NUL_ESCAPE in body else _nul_free_batch_decoder
    try:
        envelopes = decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        # The slow path only runs to say what is wrong, event by event.
        raise _batch_errors(body) from None
    _check_count(len(envelopes))
    return _checked_events(envelopes)


def parse_tenant_batch(body: bytes, *, tenant: str, ndjson: bool) -> Sequence[Event]:
    """`parse_batch` for a key of `tenant`: a batch naming another tenant is refused whole.
    Module-level, so that a ledger can run it in a worker process (`append_body`)."""
    return of_tenant(parse_batch(body, ndjson=ndjson), tenant)


def of_tenant(events: Sequence[Event], tenant: str) -> Sequence[Event]:
    """The events, if every one names `tenant`; else BatchRejected naming each that does not."""
    wrong = [
        EventError(
            event.id,
            "tenant",
            f"this key writes to tenant {tenant!r} only, the event names {event.tenant!r}",
            index,
        )
        for index, event in enumerate(events)
        if event.tenant != tenant
    ]
    if wrong:
        raise BatchRejected(wrong)
    return events


def parse_event(obj: bytes) -> Event:
    """One CloudEvent as JSON -> a typed event; raises EventError naming the field and reason."""
    try:
        envelope = _event_decoder.decode(obj)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise _event_error(obj, error, None) from None
    event = _events_of([envelope])[0]
    errors = _dispute_errors([event], indexed=False)
    if errors:
        raise errors[0]
    return event


def _dispute_errors(events: list[Event], *, indexed: bool = True) -> list[EventError]:
    """Dispute events must sit where settlement looks for them and episodes never do: under
    the disputes customer, in the dispute's own conversation, with no intent."""
    errors = []
    for number, event in enumerate(events):
        data = event.data
        if not isinstance(data, DisputeFiled | DisputeRuled):
            continue
        index = number if indexed else None
        if event.customer != DISPUTE_CUSTOMER:
            reason = f"is {event.customer!r}; a dispute event's customer is {DISPUTE_CUSTOMER!r}"
            errors.append(EventError(event.id, "customer", reason, index))
        elif event.conversation != data.dispute_id:
            reason = (
                f"is {event.conversation!r}; a dispute event's conversation is its "
                f"data.dispute_id, {data.dispute_id!r}"
            )
            errors.append(EventError(event.id, "conversation", reason, index))
        elif event.intent is not None:
            errors.append(EventError(event.id, "intent", "must be absent on a dispute", index))
    return errors


def _checked_events(envelopes: list[Any]) -> list[Event]:
    """The events of decoded envelopes, the dispute events among them checked."""
    events = _events_of(envelopes)
    # Most batches hold no dispute: one pass over the envelopes' classes in C says so.
    if _DISPUTE_ENVELOPES.isdisjoint(map(type, envelopes)):
        return events
    errors = _dispute_errors(events)
    if errors:
        raise BatchRejected(errors)
    return events


def _events_of(envelopes: list[Any]) -> list[Event]:
    # The hot loop of ingest: locals instead of globals, no per-event function call.
    type_of = _TYPE_OF_ENVELOPE
    utc = UTC
    events: list[Event] = []
    append = events.append
    for envelope in envelopes:
        time = envelope.time
        if time.tzinfo is not utc:
            try:
                time = time.astimezone(utc)
            except OverflowError:  # 0001-01-01 at a positive offset is before year 1 in UTC
                reason = f"{time.isoformat()} is out of range once converted to UTC"
                raise BatchRejected(
                    [EventError(envelope.id, "time", reason, len(events))]
                ) from None
        append(
            Event(
                specversion=envelope.specversion,
                id=envelope.id,
                source=envelope.source,
                type=type_of[envelope.__class__],
                time=time,
                tenant=envelope.tenant,
                customer=envelope.customer,
                conversation=envelope.conversation,
                data=envelope.data,
                intent=envelope.intent,
                subject=envelope.subject,
                datacontenttype=envelope.datacontenttype,
                traceparent=envelope.traceparent,
            )
        )
    return events


def _parse_lines(body: bytes) -> list[Event]:
    lines = [line for line in body.split(b"\n") if line.strip()]
    _check_count(len(lines))
    # Line by line, not msgspec's decode_lines: that takes any run of JSON values, so two
    # events on one line, or one split over two, would pass where NDJSON refuses them.
    decode = (_event_decoder if _NUL_ESCAPE in body else _nul_free_event_decoder).decode
    envelopes = []
    errors = []
    for index, line in enumerate(lines):
        try:
            envelopes.append(decode(line))
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            # Without a NUL in the body the two decoders fail alike, at the same field.
            errors.append(_event_error(line, error, index))
    if errors:
        raise BatchRejected(errors)
    return _checked_events(envelopes)


def _batch_errors(body: bytes) -> BatchRejected:
    """Every reason a JSON-array batch was refused; only called once the fast decode failed."""
    try:
        items = _items_decoder.decode(body)
    except msgspec.ValidationError as error:
        return _body_rejected(f"must be a JSON array of events: {_reason_of(str(error))}")
    except msgspec.DecodeError as error:
        return _body_rejected(f"is not valid JSON: {error}")
    try:
        _check_count(len(items))
    except BatchRejected as too_many:
        return too_many
    errors = []
    for index, item in enumerate(items):
        try:
            _event_decoder.decode(item)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            errors.append(_event_error(bytes(item), error, index))
    if not errors:
        # Each event decodes alone but the batch did not: a decoder disagreement we must not hide.
        return _body_rejected("was refused as a whole but no single event is invalid (a raas bug)")
    return BatchRejected(errors)


def _check_count(count: int) -> None:
    if count > BATCH_EVENTS_MAX:
        _reject_body(f"holds {count:,} events; a batch may hold at most {BATCH_EVENTS_MAX:,}")


def _reject_body(reason: str) -> typing.NoReturn:
    raise _body_rejected(reason)


def _body_rejected(reason: str) -> BatchRejected:
    return BatchRejected([EventError(None, BODY_FIELD, reason)])


# msgspec ends each validation message with " - at `$...`"; the rest is the reason.
_AT_PATH: Final = re.compile(r" - at `\$(?:\[\d+\])?(?P<path>[^`]*)`$")
_NAMED_FIELD: Final = re.compile(
    r"^(?:Object missing required field|Object contains unknown field) `(?P<name>[^`]+)`$"
    r"|^`(?P<own>[A-Za-z_][A-Za-z0-9_]*)` (?P<rest>.+)$",
    re.DOTALL,
)


def _event_error(item: bytes, error: Exception, index: int | None) -> EventError:
    event_id = _id_of(item)
    if isinstance(error, msgspec.DecodeError) and not isinstance(error, msgspec.ValidationError):
        return EventError(event_id, EVENT_ROOT_FIELD, f"is not valid JSON: {error}", index)
    message = str(error)
    match = _AT_PATH.search(message)
    path = match.group("path").lstrip(".") if match else ""
    reason = _reason_of(message)
    field = path
    named = _NAMED_FIELD.match(reason)
    if named:
        # The message names a field below the path (a missing or unknown one, or one that a
        # __post_init__ check refused): point at that field, not at its parent object.
        name = named.group("name") or named.group("own")
        field = f"{path}.{name}" if path else name
        if reason.startswith("Object missing"):
            reason = "is required but missing"
        elif reason.startswith("Object contains unknown"):
            reason = "is not a field of this event type"
        else:
            reason = named.group("rest")
    if reason == f"Expected `str` matching regex {NO_NUL_PATTERN!r}":
        reason = "holds a NUL character (U+0000), which no ledger store can keep in an id"
    if field == "type" and reason.startswith("Invalid value"):
        reason = (
            f"{_type_of(item)!r} is not a raas event type; expected one of: {_EVENT_TYPES_TEXT}"
        )
    return EventError(event_id, field or EVENT_ROOT_FIELD, reason, index)


def _reason_of(message: str) -> str:
    return _AT_PATH.sub("", message)


def _id_of(item: bytes) -> str | None:
    try:
        found = _id_decoder.decode(item).id
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return found[:ECHOED_ID_CHARACTERS_MAX] if isinstance(found, str) else None


class _TypeOnly(msgspec.Struct):
    type: Any = None


_type_decoder: Final = msgspec.json.Decoder(_TypeOnly)


def _type_of(item: bytes) -> str:
    try:
        found = _type_decoder.decode(item).type
    except (msgspec.ValidationError, msgspec.DecodeError):
        return ""
    return str(found)[:ECHOED_ID_CHARACTERS_MAX]
