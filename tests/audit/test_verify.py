"""The offline auditor on bundles: a true invoice verifies (redacted too), and every kind of lie
is caught and named: an edited amount, a dropped or added episode, an entry changed or left out,
a proof that does not hold, a checkpoint nobody trusted signed, a contract with other terms.
What would break: an auditor that accepts what it should refuse, or refuses without saying where.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from evidence_workloads import (
    CONTRACT_TEXT,
    INVOICE_ID,
    OTHER_SIGNER,
    SIGNER,
    VERIFIER,
    FakeEvidenceStore,
    every_outcome,
    hand_written_store,
    simulated_store,
)

from raas.audit.bundle import Bundle, BundleEntry
from raas.audit.verify import BundleReport, decode_event, verify_bundle
from raas.core.canonical import leaf_hash
from raas.core.invoice import Invoice, InvoiceLine, invoice_from_json, invoice_json
from raas.ledger.checkpoint import open_checkpoint, sign_checkpoint
from raas.ledger.evidence import export_bundle
from raas.ledger.keys import SignerKey

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def store() -> FakeEvidenceStore:
    return hand_written_store()


@pytest.fixture(scope="module")
def bundle(store: FakeEvidenceStore) -> Bundle:
    return export_bundle(store, INVOICE_ID, CONTRACT_TEXT)


@pytest.fixture(scope="module")
def whole_log(store: FakeEvidenceStore) -> Bundle:
    return export_bundle(store, INVOICE_ID, CONTRACT_TEXT, scope="log")


def findings(report: BundleReport) -> list[str]:
    return list(report.lines())


def edit_invoice(bundle: Bundle, change: Callable[[Invoice], Invoice]) -> Bundle:
    edited = change(invoice_from_json(bundle.invoice))
    return msgspec.structs.replace(bundle, invoice=invoice_json(edited))


def edit_line(number: int, **changes: object) -> Callable[[Invoice], Invoice]:
    def change(invoice: Invoice) -> Invoice:
        lines = list(invoice.lines)
        lines[number - 1] = msgspec.structs.replace(lines[number - 1], **changes)
        return msgspec.structs.replace(invoice, lines=tuple(lines))

    return change


def replace_entry(bundle: Bundle, position: int, **changes: object) -> Bundle:
    entries = list(bundle.entries)
    entries[position] = msgspec.structs.replace(entries[position], **changes)
    return msgspec.structs.replace(bundle, entries=tuple(entries))


# -- a true invoice verifies ------------------------------------------------------------------


def test_a_true_invoice_verifies_with_its_totals(bundle: Bundle, store: FakeEvidenceStore) -> None:
    report = verify_bundle(bundle, [VERIFIER])
    assert findings(report) == []
    assert report.ok and report.rederived
    assert report.invoice_id == INVOICE_ID
    assert (report.origin, report.size) == ("example.com/raas/acme", store.ledger.head("acme"))
    # Customers with a billed or handed-off episode: confirmed, assumed (two problems), handoff.
    assert (report.customers, report.episodes) == (3, 4)
    assert report.entries_checked == report.proofs_checked == len(bundle.entries) > 0
    assert [(line.outcome, line.quantity, line.amount) for line in report.line_totals] == [
        ("ai_resolution", 3, Decimal("2.97")),
        ("handoff", 1, Decimal("0.00")),
    ]
    assert report.total == Decimal("2.97") and report.currency == "USD"
    assert not report.counts_checked


def test_a_bundle_of_the_whole_log_also_checks_what_was_not_billed(
    whole_log: Bundle, store: FakeEvidenceStore
) -> None:
    report = verify_bundle(whole_log, [VERIFIER])
    assert findings(report) == []
    assert report.ok and report.counts_checked
    assert report.entries_checked == store.ledger.head("acme") == len(whole_log.entries)
    # ...and the reopened (one episode over two conversations), unresolved and late ones.
    assert (report.customers, report.episodes) == (6, 7)


def test_the_auditor_can_require_a_bundle_of_the_whole_log(
    bundle: Bundle, whole_log: Bundle
) -> None:
    assert verify_bundle(whole_log, [VERIFIER], require_complete=True).ok
    report = verify_bundle(bundle, [VERIFIER], require_complete=True)
    assert not report.ok
    assert next(report.lines()) == (
        "bundle: holds scope 'customers', the invoice's customers only; a bundle of the whole "
        "log was required (raas evidence export --complete)"
    )


def test_a_simulated_month_verifies() -> None:
    store = simulated_store(conversations=40)
    bundle = export_bundle(store, INVOICE_ID, CONTRACT_TEXT)
    report = verify_bundle(bundle, [VERIFIER])
    assert findings(report) == []
    assert report.ok
    assert sum(line.quantity for line in report.line_totals) > 10
    assert report.total == sum((line.amount for line in report.line_totals), Decimal(0)) > 0


def test_the_expected_origin_is_enforced(bundle: Bundle) -> None:
    assert verify_bundle(bundle, [VERIFIER], origin="example.com/raas/acme").ok
    report = verify_bundle(bundle, [VERIFIER], origin="example.com/raas/globex")
    assert findings(report) == [
        "checkpoint: the checkpoint is for log 'example.com/raas/acme', "
        "not 'example.com/raas/globex'"
    ]


# -- the checkpoint ---------------------------------------------------------------------------


def test_a_checkpoint_signed_only_by_unknown_keys_fails(store: FakeEvidenceStore) -> None:
    other = FakeEvidenceStore()
    other.append(every_outcome())
    other.sign("acme", signer=OTHER_SIGNER)
    other.invoices = store.invoices
    bundle = export_bundle(other, INVOICE_ID, CONTRACT_TEXT)
    report = verify_bundle(bundle, [VERIFIER])
    assert not report.ok and not report.rederived
    [finding] = findings(report)
    assert finding.startswith("checkpoint: no signature by a known key; the note is signed by")


def test_an_unknown_cosignature_is_ignored(bundle: Bundle) -> None:
    checkpoint = open_checkpoint(bundle.checkpoint, [VERIFIER])
    note = sign_checkpoint(
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root,
        [SIGNER, SignerKey("a-witness", bytes(32))],
    )
    assert verify_bundle(msgspec.structs.replace(bundle, checkpoint=note), [VERIFIER]).ok


def test_a_checkpoint_of_another_size_fails_on_the_ledger_point(
    bundle: Bundle, store: FakeEvidenceStore
) -> None:
    checkpoint = open_checkpoint(bundle.checkpoint, [VERIFIER])
    smaller = checkpoint.size - 1
    note = sign_checkpoint(checkpoint.origin, smaller, store.tree("acme", smaller).root(), SIGNER)
    report = verify_bundle(msgspec.structs.replace(bundle, checkpoint=note), [VERIFIER])
    assert not report.ok
    assert findings(report)[0] == (
        f"invoice ledger point: the invoice was settled at size {checkpoint.size}, "
        f"the checkpoint is at size {smaller}"
    )


# -- entries and proofs -----------------------------------------------------------------------


def test_a_changed_entry_fails_its_proof_by_log_index(bundle: Bundle) -> None:
    target = bundle.entries[4]
    changed = target.entry.replace(b'"refund"', b'"refunds"', 1)
    assert changed != target.entry
    report = verify_bundle(replace_entry(bundle, 4, entry=changed), [VERIFIER])
    assert not report.ok and not report.rederived
    [finding] = findings(report)
    assert finding.startswith(f"entry {target.index}: inclusion proof fails: inclusion proof for")
    assert "expected root" in finding and "proof gives" in finding


def test_a_changed_proof_fails_by_log_index(bundle: Bundle) -> None:
    target = bundle.entries[0]
    proof = (bytes(32), *target.proof[1:])
    report = verify_bundle(replace_entry(bundle, 0, proof=proof), [VERIFIER])
    assert findings(report)[0].startswith(f"entry {target.index}: inclusion proof fails")
    short = verify_bundle(replace_entry(bundle, 0, proof=target.proof[:-1]), [VERIFIER])
    assert (
        f"entry {target.index}: inclusion proof fails: inclusion proof for leaf"
        in (findings(short)[0])
    )


def test_an_entry_moved_to_another_index_fails(bundle: Bundle) -> None:
    first, second = bundle.entries[0], bundle.entries[1]
    swapped = replace_entry(bundle, 0, index=second.index)
    swapped = replace_entry(swapped, 1, index=first.index)
    report = verify_bundle(swapped, [VERIFIER])
    assert not report.ok
    assert any(
        line.startswith(f"entry {second.index}: inclusion proof fails") for line in findings(report)
    )


def test_entries_out_of_order_or_repeated_fail(bundle: Bundle) -> None:
    repeated = msgspec.structs.replace(bundle, entries=(*bundle.entries, bundle.entries[0]))
    report = verify_bundle(repeated, [VERIFIER])
    index = bundle.entries[0].index
    assert findings(report) == [
        f"entry {index}: comes after index {bundle.entries[-1].index}: "
        "entries must be in ascending order"
    ]


def test_every_failing_entry_is_named_not_only_the_first(bundle: Bundle) -> None:
    broken = msgspec.structs.replace(
        bundle,
        entries=tuple(
            msgspec.structs.replace(item, proof=item.proof[1:]) for item in bundle.entries
        ),
    )
    report = verify_bundle(broken, [VERIFIER])
    assert report.findings_total == len(bundle.entries)
    assert [line.split(":")[0] for line in findings(report)] == [
        f"entry {item.index}" for item in bundle.entries
    ]


def test_an_entry_left_out_is_noticed_in_a_bundle_of_the_whole_log(whole_log: Bundle) -> None:
    dropped = whole_log.entries[7]
    bundle = msgspec.structs.replace(
        whole_log, entries=tuple(item for item in whole_log.entries if item is not dropped)
    )
    report = verify_bundle(bundle, [VERIFIER])
    assert findings(report) == [
        f"entries: a bundle of the whole log holds every index 0..{report.size - 1}; "  # type: ignore[operator]
        f"1 missing, the first is {dropped.index}"
    ]


def test_a_customer_scope_bundle_cannot_see_an_omitted_entry(store: FakeEvidenceStore) -> None:
    """The limit of the "customers" scope, pinned so that nobody relies on more: a vendor that
    bills a reopened problem and leaves the recontact out of the bundle is caught only by a bundle
    of the whole log. (Here the invoice is forged to bill the reopened episode.)"""
    forged_id = "c-reopened-1#billing"

    def bill_reopened(invoice: Invoice) -> Invoice:
        line = invoice.lines[0]
        episodes = tuple(sorted((*line.episodes, forged_id)))
        amount = line.unit_price * len(episodes)
        forged = msgspec.structs.replace(
            line, episodes=episodes, quantity=len(episodes), amount=amount
        )
        return msgspec.structs.replace(
            invoice, lines=(forged, *invoice.lines[1:]), total=invoice.total + line.unit_price
        )

    whole = edit_invoice(
        export_bundle(store, INVOICE_ID, CONTRACT_TEXT, scope="log"), bill_reopened
    )
    honest_entries = whole.entries
    # The forger keeps the first conversation and drops the recontact (c-reopened-2).
    kept = tuple(
        item for item in honest_entries if b'"conversation":"c-reopened-2"' not in item.entry
    )
    assert len(kept) < len(honest_entries)
    forged_whole = msgspec.structs.replace(whole, entries=kept)
    assert "1 missing" not in " ".join(findings(verify_bundle(forged_whole, [VERIFIER])))
    assert not verify_bundle(forged_whole, [VERIFIER]).ok  # entries missing from the whole log
    forged_customers = msgspec.structs.replace(forged_whole, scope="customers")
    assert verify_bundle(forged_customers, [VERIFIER]).ok  # the documented limit
    # With the recontact in, the same forged invoice fails by the episode and the reason.
    report = verify_bundle(msgspec.structs.replace(whole, scope="customers"), [VERIFIER])
    assert (
        f"line 1 (ai_resolution), episode {forged_id}: billed as ai_resolution, but the judge "
        "finds reopened: the customer came back about 'billing'"
    ) in " ".join(findings(report))


# -- the invoice against its re-derivation ---------------------------------------------------


def test_an_edited_amount_fails_naming_the_line(bundle: Bundle) -> None:
    edited = edit_invoice(bundle, edit_line(1, amount=Decimal("3.97")))
    assert findings(verify_bundle(edited, [VERIFIER])) == [
        "line 1 (ai_resolution): amount: expected 2.97, found 3.97"
    ]


def test_an_edited_total_fails(bundle: Bundle) -> None:
    edited = edit_invoice(
        bundle, lambda invoice: msgspec.structs.replace(invoice, total=Decimal("2.98"))
    )
    assert findings(verify_bundle(edited, [VERIFIER])) == [
        "invoice total: expected 2.97, found 2.98"
    ]


def test_a_dropped_episode_fails_naming_the_line_and_the_episode(bundle: Bundle) -> None:
    invoice = invoice_from_json(bundle.invoice)
    episodes = invoice.lines[0].episodes
    edited = edit_invoice(bundle, edit_line(1, episodes=episodes[1:], quantity=len(episodes) - 1))
    assert findings(verify_bundle(edited, [VERIFIER])) == [
        f"line 1 (ai_resolution): quantity: expected {len(episodes)}, found {len(episodes) - 1}",
        f"line 1 (ai_resolution), episode {episodes[0]}: the judge finds ai_resolution (the "
        "customer did not come back about 'delivery' within 72h), final in the period, but the "
        "line does not list it",
    ]


def test_an_added_episode_fails_naming_why_it_is_not_billable(whole_log: Bundle) -> None:
    def add(invoice: Invoice) -> Invoice:
        return edit_line(
            1, episodes=tuple(sorted((*invoice.lines[0].episodes, "c-unresolved#refund")))
        )(invoice)

    report = verify_bundle(edit_invoice(whole_log, add), [VERIFIER])
    assert findings(report) == [
        "line 1 (ai_resolution), episode c-unresolved#refund: billed as ai_resolution, but the "
        "judge finds unresolved: the customer said the problem was not resolved, final at "
        "2026-11-05T09:04:00+00:00"
    ]


def test_an_episode_billed_before_its_window_closed_is_named(whole_log: Bundle) -> None:
    report = verify_bundle(
        edit_invoice(
            whole_log,
            edit_line(
                1,
                episodes=(
                    "c-assumed#delivery",
                    "c-assumed#refund",
                    "c-confirmed#refund",
                    "c-late#refund",
                ),
            ),
        ),
        [VERIFIER],
    )
    [finding] = findings(report)
    assert finding.startswith("line 1 (ai_resolution), episode c-late#refund: billed as")
    assert "still provisional at 2026-12-01T00:00:00+01:00 (final at 2026-12-02" in finding


def test_an_unknown_episode_is_named(bundle: Bundle) -> None:
    edited = edit_invoice(bundle, edit_line(2, episodes=("c-nowhere#refund",)))
    assert findings(verify_bundle(edited, [VERIFIER])) == [
        "line 2 (handoff), episode c-nowhere#refund: billed as handoff, but no episode with this "
        "id derives from the bundle's entries",
        "line 2 (handoff), episode c-handoff#refund: the judge finds handoff (handed off to a "
        "human with context), final in the period, but the line does not list it",
    ]


def test_lines_added_removed_or_renamed_fail(bundle: Bundle) -> None:
    extra = InvoiceLine(
        outcome="bonus",
        description="x",
        quantity=0,
        unit_price=Decimal(0),
        amount=Decimal(0),
        episodes=(),
    )
    added = edit_invoice(
        bundle, lambda invoice: msgspec.structs.replace(invoice, lines=(*invoice.lines, extra))
    )
    assert findings(verify_bundle(added, [VERIFIER])) == [
        "line 3 (bonus): is not a line the contract prices"
    ]
    removed = edit_invoice(
        bundle, lambda invoice: msgspec.structs.replace(invoice, lines=invoice.lines[:1])
    )
    assert findings(verify_bundle(removed, [VERIFIER])) == [
        "line 2 (handoff): is missing from the invoice"
    ]
    renamed = edit_invoice(bundle, edit_line(2, outcome="escalation"))
    assert findings(verify_bundle(renamed, [VERIFIER])) == [
        "line 2 (escalation): expected outcome handoff, found escalation"
    ]


def test_the_counts_of_what_was_not_billed_are_checked_on_the_whole_log(
    bundle: Bundle, whole_log: Bundle
) -> None:
    def hide(invoice: Invoice) -> Invoice:
        return msgspec.structs.replace(invoice, not_billed={"reopened": 0, "unresolved": 1})

    assert findings(verify_bundle(edit_invoice(whole_log, hide), [VERIFIER])) == [
        "invoice field not_billed: expected {'reopened': 1, 'unresolved': 1}, "
        "found {'reopened': 0, 'unresolved': 1}"
    ]
    # A bundle of some customers cannot see the reopened customer: the count is out of reach.
    assert verify_bundle(edit_invoice(bundle, hide), [VERIFIER]).ok


def test_a_customer_bundle_bounds_the_counts_from_below(whole_log: Bundle) -> None:
    # Every customer, but read as a bundle of some customers: the counts are lower bounds.
    some = msgspec.structs.replace(whole_log, scope="customers")
    assert verify_bundle(some, [VERIFIER]).ok

    def change(**fields: object) -> Bundle:
        return edit_invoice(some, lambda invoice: msgspec.structs.replace(invoice, **fields))

    assert verify_bundle(change(not_billed={"reopened": 4, "unresolved": 1}), [VERIFIER]).ok
    assert findings(
        verify_bundle(change(not_billed={"reopened": 0, "unresolved": 1}), [VERIFIER])
    ) == [
        "invoice field not_billed: reopened: the bundle's customers alone have 1, "
        "the invoice says 0"
    ]
    assert findings(verify_bundle(change(not_billed={"unresolved": 1}), [VERIFIER])) == [
        "invoice field not_billed: expected the outcomes reopened, unresolved, found unresolved"
    ]
    assert findings(verify_bundle(change(provisional=0), [VERIFIER])) == [
        "invoice field provisional: the bundle's customers alone have 1, the invoice says 0"
    ]


def test_other_invoice_fields_are_compared(bundle: Bundle) -> None:
    edited = edit_invoice(
        bundle, lambda invoice: msgspec.structs.replace(invoice, vendor="someone-else")
    )
    assert findings(verify_bundle(edited, [VERIFIER])) == [
        "invoice field vendor: expected helpdesk-ai, found someone-else"
    ]


def test_invoice_bytes_edited_without_changing_its_meaning_fail(bundle: Bundle) -> None:
    reformatted = msgspec.json.encode(invoice_from_json(bundle.invoice))
    report = verify_bundle(msgspec.structs.replace(bundle, invoice=reformatted), [VERIFIER])
    assert findings(report) == [
        "invoice: its bytes are not those raas issues for what it states "
        "(raas.core.invoice.invoice_json): it was edited after issue"
    ]


def test_an_invoice_that_does_not_decode_fails(bundle: Bundle) -> None:
    report = verify_bundle(msgspec.structs.replace(bundle, invoice=b"{}"), [VERIFIER])
    assert not report.ok
    assert findings(report)[0].startswith("invoice: does not decode as a raas invoice")


# -- the contract -----------------------------------------------------------------------------


def test_a_contract_with_another_price_fails_line_by_line(bundle: Bundle) -> None:
    dearer = CONTRACT_TEXT.replace("price: 0.99", "price: 1.99")
    assert dearer != CONTRACT_TEXT
    report = verify_bundle(msgspec.structs.replace(bundle, contract=dearer), [VERIFIER])
    assert findings(report) == [
        "line 1 (ai_resolution): unit price: expected 1.99, found 0.99",
        "line 1 (ai_resolution): amount: expected 5.97, found 2.97",
        "invoice total: expected 5.97, found 2.97",
    ]


def test_the_auditors_own_contract_copy_is_compared_by_terms(bundle: Bundle) -> None:
    commented = CONTRACT_TEXT.replace("# Contract between", "# The contract between")
    assert verify_bundle(bundle, [VERIFIER], contract_text=commented).ok
    longer = CONTRACT_TEXT.replace("recontact_window_hours: 72", "recontact_window_hours: 96")
    report = verify_bundle(bundle, [VERIFIER], contract_text=longer)
    [finding] = findings(report)
    assert finding.startswith("contract: the bundle's contract differs from the auditor's copy in ")
    assert "outcomes" in finding.split(" in ", 1)[1].split(", ")


def test_a_contract_that_does_not_load_fails_naming_its_line(bundle: Bundle) -> None:
    broken = CONTRACT_TEXT.replace("currency: USD", "currency: XYZ")
    [finding] = findings(
        verify_bundle(msgspec.structs.replace(bundle, contract=broken), [VERIFIER])
    )
    assert finding.startswith("contract: the bundle's contract:") and "currency" in finding


# -- entries ----------------------------------------------------------------------------------


def test_entries_must_be_canonical_raas_events(bundle: Bundle) -> None:
    entry = bundle.entries[0].entry
    assert decode_event(entry).id
    with pytest.raises(ValueError, match="is not in canonical form"):
        decode_event(entry.replace(b'{"', b'{ "', 1))
    with pytest.raises(ValueError, match="is not a raas event"):
        decode_event(b"\xff")
    with pytest.raises(ValueError, match="is not a raas event: Object contains unknown field `a`"):
        decode_event(b'{"a":1.5}')
    repeated = entry.replace(b'{"conversation":', b'{"conversation":"x","conversation":', 1)
    with pytest.raises(ValueError, match="is not in canonical form"):
        decode_event(repeated)  # a repeated key: readers differ on which one counts
    with pytest.raises(ValueError, match=r"unknown event type 'dev\.raas\.nothing'"):
        decode_event(re.sub(rb'"type":"dev\.raas\.[a-z.]+"', b'"type":"dev.raas.nothing"', entry))


def test_a_non_canonical_entry_in_the_log_is_named(store: FakeEvidenceStore) -> None:
    """An entry that the log holds, whose proof holds, but that is not canonical: refused."""
    entries = [item.entry for item in store.ledger.iter_events("acme")]
    entries[2] = entries[2].replace(b'{"', b'{ "', 1)
    bundle = _bundle_over(entries, store)
    [finding] = findings(verify_bundle(bundle, [VERIFIER]))
    assert finding == (
        "entry 2: is not in canonical form (RFC 8785: the bytes raas writes for the event it holds)"
    )


def test_an_entry_of_another_tenant_is_named(store: FakeEvidenceStore) -> None:
    entries = [item.entry for item in store.ledger.iter_events("acme")]
    entries[3] = entries[3].replace(b'"tenant":"acme"', b'"tenant":"globex"', 1)
    [finding] = findings(verify_bundle(_bundle_over(entries, store), [VERIFIER]))
    assert finding == "entry 3: belongs to tenant 'globex', not to the invoice's log of 'acme'"


def _bundle_over(entries: list[bytes], store: FakeEvidenceStore) -> Bundle:
    """A "log" bundle of the invoice over a log holding exactly `entries`, signed by SIGNER."""
    from raas.ledger.merkle import MerkleTree

    tree = MerkleTree(leaf_hash(entry) for entry in entries)
    note = sign_checkpoint("example.com/raas/acme", len(entries), tree.root(), SIGNER)
    return Bundle(
        scope="log",
        checkpoint=note,
        invoice=store.invoices[INVOICE_ID],
        contract=CONTRACT_TEXT,
        entries=tuple(
            BundleEntry(index=index, entry=entry, proof=tuple(tree.inclusion_proof(index)))
            for index, entry in enumerate(entries)
        ),
    )


# -- what the auditor may import --------------------------------------------------------------

PURE_MODULES = (
    "raas.core.",
    "raas.audit.",
    "raas.errors",
    "raas.ledger.checkpoint",
    "raas.ledger.keys",
    "raas.native",  # C functions as pure as the Python they stand in for (commitments, hashes)
)
AUDITOR_MODULES = (
    "raas.audit.verify",
    "raas.audit.bundle",
    "raas.audit.receipt",
    "raas.audit.consistency",
)


def _imports(module: str) -> set[str]:
    path = SRC / Path(*module.split(".")).with_suffix(".py")
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_auditor_imports_only_pure_modules() -> None:
    """The auditor, and everything it imports from raas in turn, stays off stores and drivers."""
    seen: set[str] = set()
    pending = list(AUDITOR_MODULES)
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _imports(module):
            if name.startswith("raas"):
                assert name.startswith(PURE_MODULES), f"{module} imports {name}"
                if (SRC / Path(*name.split(".")).with_suffix(".py")).exists():
                    pending.append(name)
            else:
                assert name.split(".")[0] not in {
                    "sqlite3",
                    "duckdb",
                    "pyspark",
                    "psycopg",
                    "httpx",
                }, f"{module} imports {name}"
    assert "raas.ledger.checkpoint" in seen and "raas.core.settle" in seen


def test_importing_the_auditor_loads_no_driver() -> None:
    modules = ("sqlite3", "duckdb", "raas.ledger.sqlite", "raas.engine.reference")
    code = f"import sys, raas.audit.verify; print([m for m in {modules!r} if m in sys.modules])"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]"
