"""The offline auditor: an evidence bundle and the log's public key -> "verified" with the totals,
or every line, episode, entry or proof that fails, and why. Pure: no store, no driver, no network.

What `verify_bundle` checks, in order (a later step runs only on evidence the earlier ones passed):

1. the checkpoint note opens with a pinned key (signatures by unknown keys are ignored; a note
   with no valid signature by a known key fails), for the expected origin if one is given;
2. the invoice's ledger point names that checkpoint (its size);
3. every entry: indexes ascending and unique, leaf hash SHA-256(0x00 || entry) included at its
   index in the tree of the checkpoint's size and root (`raas.audit.proofs`, written apart from
   the prover), the entry canonical (RFC 8785) and a raas event of the invoice's log; every
   disclosure present opens its entry's commitments; with scope "log", every index is there;
4. the invoice re-derived from the entries alone: episodes per customer (`derive_episodes`), judged
   and rated by the bundle's contract for the invoice's period and `as_of` (`raas.core.settle`),
   then compared line by line (outcome, quantity, unit price, amount, the exact episode list), the
   total, the other fields, and finally byte for byte with what was issued.

What this proves, and what it cannot: the invoice follows from the signed log under the bundle's
contract, period and `as_of`. Those three are the settlement's inputs, taken as stated: the
contract text is signed by nobody (pass the auditor's own copy to compare its terms), and an
`as_of` at or after the period's end bills the same lines (it moves only `provisional`). In a
"customers" bundle `not_billed` and `provisional` count customers the bundle does not hold, so
only a lower bound is checked, and an entry of a bundled customer left out of the bundle cannot be
noticed; a "log" bundle closes both gaps.
Contract versions (`raas.core.versions`): with the bundle's other `versions`, a period they
split is settled part by part, each by its version, and every line's `part` is compared. An
invoice's `adjustments` and `audits` (of earlier invoices, `raas.core.adjust`) are recomputed in
a bundle of the whole log: its earlier issued invoices (`earlier`, taken as issued: each has a
bundle of its own) settled again from the entries at this invoice's checkpoint, with the
disputes and rulings the log holds, and compared line by line ("adjustment line <n>"). In a
"customers" bundle they are taken as stated (settling earlier periods again needs every
customer), and the report says so. A minimum commitment over several periods is trued up, in
either scope, on what the bundle's `earlier` invoices say the run's earlier periods were
charged (`raas.core.minimum_runs`), so a true-up line that differs is named like any line; a
bundle without the invoice of an earlier period of the run fails, naming that period. Prepaid
credit likewise (`raas.core.prepaid`): the balance an invoice starts from is recomputed from the
credit its contract states less what the bundle's `earlier` invoices drew (with the corrections
of their drawdowns, this invoice's taken as stated in a "customers" bundle), so a drawdown line
or a `prepaid_balance` that differs is named; a bundle without the invoice of an earlier period
that could have drawn fails, naming that period.

Every finding names where (checkpoint, entry <log index>, line <n> (<outcome>), episode <id>,
invoice field <name>) and what was expected against what was found.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import msgspec

from raas.audit.bundle import Bundle
from raas.audit.proofs import ProofError, verify_consistency, verify_inclusion
from raas.audit.receipt import Receipt
from raas.core.adjust import settle_with_adjustments
from raas.core.canonical import leaf_hash
from raas.core.commitments import DisclosureError, verify_disclosure
from raas.core.contract import Contract, parse_contract
from raas.core.episodes import UNSPECIFIED_INTENT, Entry, Episode, derive_episodes
from raas.core.events import DATA_TYPES, DisputeFiled, DisputeRuled, Event
from raas.core.features import episode_features
from raas.core.invoice import Invoice, InvoiceLine, invoice_from_json, invoice_json
from raas.core.judge import Outcome, judge_episode
from raas.core.minimum_runs import commitment_prior_subtotals
from raas.core.periods import Period, parse_period
from raas.core.prepaid import prepaid_drawn_before
from raas.core.settle import Settlement, settle
from raas.core.versions import Subtotals, settle_versions
from raas.errors import ContractError, SettlementError
from raas.ledger.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from raas.ledger.keys import VerifierKey

__all__ = [
    "FINDINGS_KEPT_MAX",
    "BundleReport",
    "ConsistencyReport",
    "Finding",
    "Findings",
    "LineTotal",
    "ReceiptReport",
    "decode_event",
    "verify_bundle",
    "verify_consistency_proof",
    "verify_receipt",
]

# A report keeps this many findings and counts the rest: a bundle with every proof broken
# should say so in a screenful, not in a million lines.
FINDINGS_KEPT_MAX: Final = 1_000

# The invoice fields compared one by one after the lines; `lines`, `total` and `ledger` have their
# own checks. `not_billed` and `provisional` count every customer's episodes, so only a bundle
# of the whole log ("log" scope) can check them.
_COUNT_FIELDS: Final = ("not_billed", "provisional")
# The adjustments of earlier invoices and their audit samples are not derived from this period's
# entries (they compare earlier invoices with their periods settled again): taken as stated.
_STATED_FIELDS: Final = ("adjustments", "audits")
_HEADER_FIELDS: Final = tuple(
    name
    for name in Invoice.__struct_fields__
    if name not in {"lines", "total", "ledger", *_COUNT_FIELDS, *_STATED_FIELDS}
)
# A line's fields compared one by one; its outcome and episodes have their own checks.
_LINE_FIELDS: Final = tuple(
    name for name in InvoiceLine.__struct_fields__ if name not in {"outcome", "episodes"}
)


class Finding(msgspec.Struct, frozen=True):
    """One thing that does not verify: where it is, and why (expected against found)."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


class LineTotal(msgspec.Struct, frozen=True, kw_only=True):
    """One re-derived invoice line, as the auditor reports it."""

    outcome: str
    quantity: int | Decimal  # a count, or a weighted or monetary quantity
    unit_price: Decimal
    amount: Decimal


class Findings(msgspec.Struct, kw_only=True):
    """What failed, kept up to FINDINGS_KEPT_MAX and counted in full."""

    findings: list[Finding] = msgspec.field(default_factory=list)
    findings_total: int = 0  # including those beyond FINDINGS_KEPT_MAX

    def add(self, where: str, reason: str) -> None:
        self.findings_total += 1
        if len(self.findings) < FINDINGS_KEPT_MAX:
            self.findings.append(Finding(where, reason))

    def lines(self) -> Iterator[str]:
        """The findings as lines of text, with a count of those not kept."""
        for finding in self.findings:
            yield str(finding)
        hidden = self.findings_total - len(self.findings)
        if hidden > 0:
            yield f"... and {hidden:,} more"


class BundleReport(Findings, kw_only=True):
    """What the auditor found in a bundle. `ok` when nothing failed and the invoice re-derived."""

    invoice_id: str | None = None
    contract: str | None = None  # "<contract> v<version>", as the invoice states it
    period: str | None = None
    as_of: datetime | None = None
    origin: str | None = None
    size: int | None = None
    root: bytes | None = None
    scope: str | None = None
    entries_checked: int = 0  # entries whose every check passed
    proofs_checked: int = 0  # inclusion proofs that verified
    disclosures_checked: int = 0
    customers: int = 0
    episodes: int = 0  # derived from the entries
    rederived: bool = False  # the invoice was re-derived (only from evidence that verified)
    counts_checked: bool = False  # not_billed and provisional were compared too
    adjustments_checked: bool = False  # adjustments and audits recomputed (a "log" bundle)
    line_totals: list[LineTotal] = msgspec.field(default_factory=list)
    total: Decimal | None = None
    currency: str | None = None

    @property
    def ok(self) -> bool:
        return self.findings_total == 0 and self.rederived


class ReceiptReport(Findings, kw_only=True):
    """What the auditor found in a receipt: which checkpoint, how many entries proved included."""

    invoice_id: str | None = None
    line: int | None = None
    outcome: str | None = None
    episodes: tuple[str, ...] = ()
    origin: str | None = None
    size: int | None = None
    root: bytes | None = None
    proofs_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.findings_total == 0 and self.proofs_checked > 0


class ConsistencyReport(Findings, kw_only=True):
    """Whether the newer checkpoint's log extends the older one's."""

    origin: str | None = None
    old_size: int | None = None
    new_size: int | None = None
    old_root: bytes | None = None
    new_root: bytes | None = None
    proven: bool = False

    @property
    def ok(self) -> bool:
        return self.findings_total == 0 and self.proven


_envelope_decoder: Final = msgspec.json.Decoder(Event)
_entry_encoder: Final = msgspec.json.Encoder(order="sorted")
_DECODE_ERRORS: Final = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


def decode_event(entry: bytes) -> Event:
    """The raas event behind canonical entry bytes; raises ValueError saying why it is not one.

    The entry must be canonical: exactly the bytes raas writes for the event it decodes to
    (RFC 8785: sorted keys, no whitespace, defaults left out), so that no two readers can see
    different facts behind one leaf (a repeated key, say, which JSON parsers resolve differently).
    """
    try:
        envelope = _envelope_decoder.decode(entry)
        data_class = DATA_TYPES.get(envelope.type)
        if data_class is None:
            raise ValueError(f"is not a raas event: unknown event type {envelope.type!r}")
        data = msgspec.convert(envelope.data, data_class)
    except _DECODE_ERRORS as error:
        raise ValueError(f"is not a raas event: {error}") from error
    event = msgspec.structs.replace(envelope, data=data)
    if _entry_encoder.encode(event) != entry:
        raise ValueError(
            "is not in canonical form (RFC 8785: the bytes raas writes for the event it holds)"
        )
    return event


def verify_bundle(
    bundle: Bundle,
    keys: Sequence[VerifierKey],
    *,
    origin: str | None = None,
    contract_text: str | None = None,
    require_complete: bool = False,
) -> BundleReport:
    """Check `bundle` against the pinned `keys`; see the module docstring for the steps.

    `origin`, if given, is the log the checkpoint must be for. `contract_text`, if given, is the
    auditor's own copy of the contract: the bundle's must state the same terms. With
    `require_complete`, only a bundle of the whole log (scope "log") can verify.
    """
    report = BundleReport(scope=bundle.scope)
    if require_complete and bundle.scope != "log":
        report.add(
            "bundle",
            f"holds scope {bundle.scope!r}, the invoice's customers only; a bundle of the whole "
            "log was required (raas evidence export --complete)",
        )
    try:
        checkpoint = open_checkpoint(bundle.checkpoint, keys, origin=origin)
    except CheckpointError as error:
        report.add("checkpoint", str(error))
        return report
    report.origin, report.size, report.root = checkpoint.origin, checkpoint.size, checkpoint.root

    invoice: Invoice | None = None
    try:
        invoice = invoice_from_json(bundle.invoice)
    except _DECODE_ERRORS as error:
        report.add("invoice", f"does not decode as a raas invoice: {error}")
    if invoice is not None:
        report.invoice_id = invoice.id
        report.contract = f"{invoice.contract} v{invoice.contract_version}"
        report.period, report.as_of = invoice.period, invoice.as_of
        report.currency = invoice.currency
        _check_ledger_point(report, invoice, checkpoint)

    customers = _check_entries(report, bundle, checkpoint, invoice)
    if report.findings_total or invoice is None:
        return report

    contract = _read_contract(report, bundle.contract, contract_text)
    if contract is None:
        return report
    versions = [contract]
    for number, text in enumerate(bundle.versions, start=1):
        try:
            versions.append(parse_contract(text, f"the bundle's contract version {number}"))
        except ContractError as error:
            report.add(f"contract versions[{number}]", str(error))
    earlier = []
    for number, body in enumerate(bundle.earlier, start=1):
        try:
            earlier.append(invoice_from_json(body))
        except _DECODE_ERRORS as error:
            report.add(f"earlier invoice {number}", f"does not decode as a raas invoice: {error}")
    if report.findings_total:
        return report
    _rederive(report, bundle, versions, earlier, invoice, customers)
    return report


def _check_ledger_point(report: BundleReport, invoice: Invoice, checkpoint: Checkpoint) -> None:
    point = invoice.ledger
    if point.size != checkpoint.size:
        report.add(
            "invoice ledger point",
            f"the invoice was settled at size {point.size}, the checkpoint is at size "
            f"{checkpoint.size}",
        )
    # Invoices issued before the root was recorded have none; the size above still binds them.
    root = base64.b64encode(checkpoint.root).decode("ascii")
    if point.root is not None and point.root != root:
        report.add(
            "invoice ledger point",
            f"the invoice names the checkpoint with root {point.root}, the bundle's checkpoint "
            f"has root {root}",
        )


def _check_entries(
    report: BundleReport, bundle: Bundle, checkpoint: Checkpoint, invoice: Invoice | None
) -> dict[str, list[Entry]]:
    """Every entry's proof and form; the entries that pass, grouped by customer."""
    customers: dict[str, list[Entry]] = {}
    tenant = None if invoice is None else invoice.ledger.tenant
    size, root = checkpoint.size, checkpoint.root
    previous = -1
    for item in bundle.entries:
        where = f"entry {item.index}"
        if item.index <= previous:
            report.add(where, f"comes after index {previous}: entries must be in ascending order")
        previous = max(previous, item.index)
        leaf = leaf_hash(item.entry)
        try:
            verify_inclusion(leaf, item.index, size, item.proof, root)
        except ProofError as error:
            report.add(where, f"inclusion proof fails: {error}")
            continue
        report.proofs_checked += 1
        if item.disclosures is not None:
            try:
                verify_disclosure(item.entry, item.disclosures)
            # ValueError too: disclosures that are not UTF-8 reach msgspec's UnicodeDecodeError.
            except (DisclosureError, ValueError) as error:
                report.add(where, f"disclosures do not open the entry's commitments: {error}")
                continue
            report.disclosures_checked += 1
        try:
            event = decode_event(item.entry)
        except ValueError as error:
            report.add(where, str(error))
            continue
        if tenant is not None and event.tenant != tenant:
            report.add(
                where, f"belongs to tenant {event.tenant!r}, not to the invoice's log of {tenant!r}"
            )
            continue
        report.entries_checked += 1
        customers.setdefault(event.customer, []).append(Entry(event, leaf))

    if bundle.scope == "log":
        indexes = {item.index for item in bundle.entries}
        missing = [index for index in range(size) if index not in indexes]
        if missing:
            report.add(
                "entries",
                f"a bundle of the whole log holds every index 0..{size - 1}; "
                f"{len(missing)} missing, the first is {missing[0]}",
            )
    return customers


def _read_contract(report: BundleReport, text: str, auditor_text: str | None) -> Contract | None:
    try:
        contract = parse_contract(text, "the bundle's contract")
    except ContractError as error:
        report.add("contract", str(error))
        return None
    if auditor_text is not None:
        try:
            own = parse_contract(auditor_text, "the auditor's contract")
        except ContractError as error:
            report.add("contract", f"the auditor's copy does not load: {error}")
            return None
        if own != contract:
            ours, theirs = msgspec.to_builtins(own), msgspec.to_builtins(contract)
            differing = sorted(
                key for key in ours.keys() | theirs.keys() if ours.get(key) != theirs.get(key)
            )
            report.add(
                "contract",
                f"the bundle's contract differs from the auditor's copy in {', '.join(differing)}",
            )
            return None
    return contract


def _rederive(
    report: BundleReport,
    bundle: Bundle,
    versions: Sequence[Contract],
    earlier: Sequence[Invoice],
    claimed: Invoice,
    customers: Mapping[str, list[Entry]],
) -> None:
    contract = versions[0]
    try:
        period = parse_period(claimed.period, contract.time_zone)
    except ValueError as error:
        report.add("invoice field period", str(error))
        return
    ordered = [customers[name] for name in sorted(customers)]

    def settle_one(
        version: Contract, part: Period, moment: datetime, balance: Decimal | None, prior: Subtotals
    ) -> Settlement:
        return settle(
            version,
            ordered,
            period=part,
            ledger=claimed.ledger,
            as_of=moment,
            prepaid_balance=balance,
            commitment_prior_subtotals=prior,
        )

    report.adjustments_checked = bundle.scope == "log"
    try:
        if report.adjustments_checked:
            settlement = settle_with_adjustments(
                versions,
                period,
                settle_one,
                issued=earlier,
                dispute_events=[
                    entry.event
                    for entries in ordered
                    for entry in entries
                    if isinstance(entry.event.data, DisputeFiled | DisputeRuled)
                ],
                episode_rows=lambda ids: _episode_rows(versions, ordered, ids),
                as_of=claimed.as_of,
            )
        else:
            settlement = settle_versions(
                versions,
                period,
                settle_one,
                as_of=claimed.as_of,
                prepaid_drawn=prepaid_drawn_before(
                    versions, period, earlier, corrections=claimed.adjustments
                ),
                commitment_prior_subtotals=commitment_prior_subtotals(versions, period, earlier),
            )
    except SettlementError as error:
        report.add("settlement", str(error))
        return
    expected = settlement.invoice
    report.rederived = True
    report.customers = len(customers)
    report.line_totals = [
        LineTotal(
            outcome=line.outcome,
            quantity=line.quantity,
            unit_price=line.unit_price,
            amount=line.amount,
        )
        for line in expected.lines
    ]
    report.total = expected.total
    report.currency = expected.currency
    derived = settlement.report
    # Every derived episode lands in exactly one of these counts.
    report.episodes = (
        derived.episodes + derived.provisional + derived.earlier_periods + derived.later_periods
    )
    outcomes = _Outcomes(contract, customers)

    _compare_lines(report, claimed.lines, expected.lines, outcomes, period, claimed.as_of)
    if claimed.total != expected.total:
        report.add("invoice total", f"expected {expected.total}, found {claimed.total}")
    fields: tuple[str, ...] = _HEADER_FIELDS
    if bundle.scope == "log":
        report.counts_checked = True
        fields += _COUNT_FIELDS
    else:
        # The counts of what was not billed include customers outside the bundle: what the
        # bundle's customers give is a lower bound. Everything else must match exactly.
        _check_count_bounds(report, claimed, expected)
        expected = msgspec.structs.replace(
            expected, not_billed=claimed.not_billed, provisional=claimed.provisional
        )
    for name in fields:
        found, wanted = getattr(claimed, name), getattr(expected, name)
        if found != wanted:
            report.add(f"invoice field {name}", f"expected {_show(wanted)}, found {_show(found)}")
    if report.adjustments_checked:
        _compare_adjustments(report, claimed.adjustments, expected.adjustments)
        if claimed.audits != expected.audits:
            report.add(
                "invoice field audits",
                f"expected {_show(expected.audits)}, found {_show(claimed.audits)}",
            )
    else:
        expected = msgspec.structs.replace(
            expected, **{name: getattr(claimed, name) for name in _STATED_FIELDS}
        )
    if not report.findings_total and invoice_json(expected) != bundle.invoice:
        report.add(
            "invoice",
            "its bytes are not those raas issues for what it states (raas.core.invoice."
            "invoice_json): it was edited after issue",
        )


def _episode_rows(
    versions: Sequence[Contract], customers: Sequence[list[Entry]], ids: Collection[str]
) -> dict[str, dict[str, object]]:
    """The features of these episodes, derived with the latest version's window (as every
    engine reads reopened episodes)."""
    wanted = set(ids)
    horizon = max(versions, key=lambda version: version.version).window
    return {
        episode.id: episode_features(episode)
        for entries in customers
        for episode in derive_episodes(entries, link_horizon=horizon)
        if episode.id in wanted
    }


def _compare_adjustments(
    report: BundleReport, claimed: Sequence[InvoiceLine], expected: Sequence[InvoiceLine]
) -> None:
    """The invoice's adjustment lines against those recomputed, field by field; a line names
    the invoice and line it corrects."""
    for number in range(1, max(len(claimed), len(expected)) + 1):
        found = claimed[number - 1] if number <= len(claimed) else None
        wanted = expected[number - 1] if number <= len(expected) else None
        line = found if found is not None else wanted
        assert line is not None
        where = f"adjustment line {number} ({line.outcome}{_correcting(line)})"
        if found is None:
            report.add(where, "is missing from the invoice: the evidence adjusts this")
            continue
        if wanted is None:
            report.add(where, "adjusts nothing the evidence changes")
            continue
        for name in InvoiceLine.__struct_fields__:
            if getattr(found, name) != getattr(wanted, name):
                report.add(
                    where,
                    f"{name}: expected {_show(getattr(wanted, name))}, "
                    f"found {_show(getattr(found, name))}",
                )


def _correcting(line: InvoiceLine) -> str:
    corrects = line.corrects
    if corrects is None:
        return ""
    which = "a new line" if corrects.line is None else f"line {corrects.line + 1}"
    return f", correcting {which} of {corrects.invoice} for {corrects.reason}"


def _check_count_bounds(report: BundleReport, claimed: Invoice, partial: Invoice) -> None:
    """`not_billed` and `provisional` against the bundle's customers alone: the same outcome
    kinds, and at least as many as those customers account for."""
    if sorted(claimed.not_billed) != sorted(partial.not_billed):
        report.add(
            "invoice field not_billed",
            f"expected the outcomes {', '.join(sorted(partial.not_billed))}, "
            f"found {', '.join(sorted(claimed.not_billed)) or 'none'}",
        )
        return
    for kind, least in sorted(partial.not_billed.items()):
        if claimed.not_billed[kind] < least:
            report.add(
                "invoice field not_billed",
                f"{kind}: the bundle's customers alone have {least}, the invoice says "
                f"{claimed.not_billed[kind]}",
            )
    if claimed.provisional < partial.provisional:
        report.add(
            "invoice field provisional",
            f"the bundle's customers alone have {partial.provisional}, the invoice says "
            f"{claimed.provisional}",
        )


class _Outcomes:
    """Each derived episode's outcome under the contract, to explain a line's differences.

    Derived again (settlement keeps no per-episode outcomes) and only when a line differs.
    """

    def __init__(self, contract: Contract, customers: Mapping[str, list[Entry]]) -> None:
        self._contract = contract
        self._customers = customers
        self._by_episode: dict[str, tuple[Episode, Outcome]] | None = None

    @property
    def by_episode(self) -> dict[str, tuple[Episode, Outcome]]:
        if self._by_episode is None:
            contract = self._contract
            horizon = contract.window
            self._by_episode = {}
            for entries in self._customers.values():
                for episode in derive_episodes(entries, link_horizon=horizon):
                    self._by_episode[episode.id] = (episode, judge_episode(contract, episode))
        return self._by_episode

    def explain(self, episode_id: str, period: Period, as_of: datetime) -> str:
        found = self.by_episode.get(episode_id)
        if found is None:
            return "no episode with this id derives from the bundle's entries"
        _, outcome = found
        when = outcome.final_at
        if when > as_of:
            timing = f", still provisional at {as_of.isoformat()} (final at {when.isoformat()})"
        elif when not in period:
            timing = f", final at {when.isoformat()}, outside period {period.label}"
        else:
            timing = f", final at {when.isoformat()}"
        return f"the judge finds {outcome.kind}: {outcome.reason}{timing}"


def _compare_lines(
    report: BundleReport,
    claimed: Sequence[InvoiceLine],
    expected: Sequence[InvoiceLine],
    outcomes: _Outcomes,
    period: Period,
    as_of: datetime,
) -> None:
    for number in range(1, max(len(claimed), len(expected)) + 1):
        found = claimed[number - 1] if number <= len(claimed) else None
        wanted = expected[number - 1] if number <= len(expected) else None
        if found is None:
            assert wanted is not None
            report.add(f"line {number} ({wanted.outcome})", "is missing from the invoice")
            continue
        where = f"line {number} ({found.outcome})"
        if wanted is None:
            report.add(where, "is not a line the contract prices")
            continue
        if found.outcome != wanted.outcome:
            report.add(where, f"expected outcome {wanted.outcome}, found {found.outcome}")
            continue
        for name in _LINE_FIELDS:
            if getattr(found, name) != getattr(wanted, name):
                report.add(
                    where,
                    f"{name.replace('_', ' ')}: expected {_show(getattr(wanted, name))}, "
                    f"found {_show(getattr(found, name))}",
                )
        billed, derived = set(found.episodes), set(wanted.episodes)
        for episode_id in sorted(billed - derived):
            report.add(
                f"{where}, episode {episode_id}",
                f"billed as {found.outcome}, but {outcomes.explain(episode_id, period, as_of)}",
            )
        for episode_id in sorted(derived - billed):
            _, outcome = outcomes.by_episode[episode_id]
            report.add(
                f"{where}, episode {episode_id}",
                f"the judge finds {outcome.kind} ({outcome.reason}), final in the period, "
                "but the line does not list it",
            )
        if billed == derived and found.episodes != wanted.episodes:
            report.add(where, "episodes are repeated or not in sorted order")


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal | int | str):
        return str(value)
    return repr(value)


def verify_receipt(
    receipt: Receipt, keys: Sequence[VerifierKey], *, origin: str | None = None
) -> ReceiptReport:
    """Check every tlog-proof of `receipt` against its checkpoint, opened with the pinned `keys`,
    and that the entries name the episodes the receipt claims to cover."""
    report = ReceiptReport(
        invoice_id=receipt.invoice,
        line=receipt.line,
        outcome=receipt.outcome,
        episodes=receipt.episodes,
    )
    if not receipt.proofs:
        report.add("receipt", "holds no proofs")
        return report
    note = receipt.proofs[0].checkpoint
    try:
        checkpoint = open_checkpoint(note, keys, origin=origin)
    except CheckpointError as error:
        report.add("checkpoint", str(error))
        return report
    report.origin, report.size, report.root = checkpoint.origin, checkpoint.size, checkpoint.root
    named: set[str] = set()
    previous = -1
    for position, proof in enumerate(receipt.proofs):
        where = f"entry {proof.index}"
        if proof.checkpoint != note:
            report.add(where, f"proofs[{position}] carries another checkpoint than proofs[0]")
            continue
        if proof.index <= previous:
            report.add(where, f"comes after index {previous}: proofs must be in ascending order")
        previous = max(previous, proof.index)
        if proof.extra is None:
            report.add(where, "has no extra data: the entry is needed to compute its leaf hash")
            continue
        try:
            verify_inclusion(
                leaf_hash(proof.extra), proof.index, checkpoint.size, proof.hashes, checkpoint.root
            )
        except ProofError as error:
            report.add(where, f"inclusion proof fails: {error}")
            continue
        report.proofs_checked += 1
        try:
            event = decode_event(proof.extra)
        except ValueError as error:
            report.add(where, str(error))
            continue
        named.add(f"{event.conversation}#{event.intent or UNSPECIFIED_INTENT}")
    if not report.findings_total:
        for episode_id in receipt.episodes:
            if episode_id not in named:
                report.add(
                    f"episode {episode_id}",
                    "no entry of the receipt belongs to it (conversation#intent)",
                )
    return report


def verify_consistency_proof(
    old_note: str,
    new_note: str,
    proof: Sequence[bytes],
    keys: Sequence[VerifierKey],
    *,
    origin: str | None = None,
    proof_old_note: str | None = None,
) -> ConsistencyReport:
    """Check that the log at the `new_note` checkpoint extends the log at `old_note` (RFC 9162
    section 2.1.4.2): both notes open with the pinned `keys`, are of one log, and `proof` holds.

    `proof_old_note` is the old checkpoint the proof's producer names, when the auditor holds its
    own (`old_note`, say from an earlier bundle): it must be for the same size, and a different
    root signed at that size is reported as what it is, a fork of the log.
    """
    report = ConsistencyReport()
    if (
        proof_old_note is not None
        and proof_old_note != old_note
        and not _same_size_and_root(report, old_note, proof_old_note, keys, origin)
    ):
        return report
    opened: list[Checkpoint] = []
    for name, note in (("old checkpoint", old_note), ("new checkpoint", new_note)):
        try:
            opened.append(open_checkpoint(note, keys, origin=origin))
        except CheckpointError as error:
            report.add(name, str(error))
    if len(opened) != 2:
        return report
    old, new = opened
    report.origin = new.origin
    report.old_size, report.new_size = old.size, new.size
    report.old_root, report.new_root = old.root, new.root
    if old.origin != new.origin:
        report.add(
            "checkpoints",
            f"are of two logs: the old one of {old.origin!r}, the new one of {new.origin!r}",
        )
        return report
    try:
        verify_consistency(old.size, new.size, proof, old.root, new.root)
    except ProofError as error:
        report.add(
            "consistency proof",
            f"the log at size {new.size} does not extend the log at size {old.size}: {error}",
        )
        return report
    report.proven = True
    return report


def _same_size_and_root(
    report: ConsistencyReport,
    old_note: str,
    proof_old_note: str,
    keys: Sequence[VerifierKey],
    origin: str | None,
) -> bool:
    try:
        held = open_checkpoint(old_note, keys, origin=origin)
        named = open_checkpoint(proof_old_note, keys, origin=origin)
    except CheckpointError as error:
        report.add("old checkpoint", str(error))
        return False
    if named.size != held.size:
        report.add(
            "consistency proof",
            f"is from size {named.size}, but the old checkpoint is at size {held.size}",
        )
        return False
    if named.root != held.root or named.origin != held.origin:
        report.add(
            "old checkpoint",
            f"the log signed two different trees at size {held.size}: root {held.root.hex()} "
            f"in the old checkpoint, root {named.root.hex()} in the proof's: the log was "
            "rewritten (forked)",
        )
        return False
    return True
