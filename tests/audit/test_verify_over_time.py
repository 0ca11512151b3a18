"""The auditor checks settlement over time: an invoice whose period two contract versions split,
with adjustments of an earlier invoice (a late event, an upheld dispute), verifies from a bundle
of the whole log that holds the other version and the earlier invoice; changing an adjustment's
amount, what it corrects, or where a version's part begins makes it fail naming the line. What
would break: adjustments or a version split taken on the vendor's word."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import cache

import msgspec
import pytest
from evidence_workloads import CONTRACT_TEXT, VERIFIER, FakeEvidenceStore

from factories import NOVEMBER, conversation, filing, ruling
from raas.audit.bundle import Bundle, decode_bundle, encode_bundle
from raas.audit.verify import verify_bundle
from raas.core.contract import parse_contract
from raas.core.invoice import Invoice, invoice_from_json, invoice_json
from raas.core.periods import month_period
from raas.engine.reference import settle_over_time_from_ledger
from raas.ledger.evidence import export_bundle

SECOND_TEXT = (
    CONTRACT_TEXT.replace("version: 1 ", "version: 2 ")
    .replace("effective_from: 2026-11-01", "effective_from: 2026-12-15")
    .replace("price: 0.99", "price: 1.50")
)
DECEMBER_ID = "acme-support-v1+v2-2026-12"


def problems(first: int, count: int) -> list:  # type: ignore[type-arg]
    return [
        event
        for day in range(first, first + count)
        for event in conversation(
            f"c{day}", customer=f"u-{day}", start=NOVEMBER + timedelta(days=day), confirm=True
        )
    ]


@cache
def store() -> FakeEvidenceStore:
    versions = [parse_contract(CONTRACT_TEXT), parse_contract(SECOND_TEXT)]
    assert versions[1].version == 2, "the example contract states its version so"
    made = FakeEvidenceStore()

    def settle(year: int, month: int) -> Invoice:
        made.sign("acme")
        period = month_period("Europe/Berlin", year, month)
        invoice = settle_over_time_from_ledger(made.ledger, versions, period).invoice
        made.invoices[invoice.id] = invoice_json(invoice)
        made.ledger.store_invoice(invoice.id, "acme", invoice_json(invoice))
        return invoice

    made.append(problems(0, 3))
    november = settle(2026, 11)
    december_start = month_period("Europe/Berlin", 2026, 12).start
    made.append(
        [
            *problems(5, 1),  # a November problem whose events arrive in December
            filing(1, november, at=december_start, episodes=["c1#refund"]),
            ruling(1, "upheld", at=december_start + timedelta(days=1)),
            *problems(32, 1),  # v1's part of December
            *problems(47, 1),  # v2's part
        ]
    )
    december = settle(2026, 12)
    assert {line.corrects.reason for line in december.adjustments if line.corrects} == {
        "late_events",
        "dispute",
    }
    assert {line.part.version for line in december.lines if line.part} == {1, 2}
    return made


@cache
def bundle() -> Bundle:
    made = export_bundle(store(), DECEMBER_ID, SECOND_TEXT, scope="log", versions=[CONTRACT_TEXT])
    assert made.version == 2 and len(made.earlier) == 1
    return decode_bundle(encode_bundle(made))  # as an auditor reads the file


def test_adjustments_and_a_version_split_verify() -> None:
    report = verify_bundle(bundle(), [VERIFIER])
    assert report.ok, report.lines()
    assert report.adjustments_checked


def test_a_bundle_of_the_invoice_customers_takes_adjustments_as_stated() -> None:
    made = export_bundle(store(), DECEMBER_ID, SECOND_TEXT, versions=[CONTRACT_TEXT])
    report = verify_bundle(made, [VERIFIER])
    assert report.ok, report.lines()
    assert not report.adjustments_checked


def test_without_the_other_version_the_split_does_not_verify() -> None:
    report = verify_bundle(msgspec.structs.replace(bundle(), versions=()), [VERIFIER])
    assert not report.ok


def _edited(change: Callable[[Invoice], Invoice]) -> Bundle:
    invoice = change(invoice_from_json(bundle().invoice))
    return msgspec.structs.replace(bundle(), invoice=invoice_json(invoice))


def _adjusted(index: int, **fields: object) -> Callable[[Invoice], Invoice]:
    def change(invoice: Invoice) -> Invoice:
        lines = list(invoice.adjustments)
        lines[index] = msgspec.structs.replace(lines[index], **fields)
        return msgspec.structs.replace(invoice, adjustments=tuple(lines))

    return change


def _corrects(index: int, **fields: object) -> Callable[[Invoice], Invoice]:
    def change(invoice: Invoice) -> Invoice:
        line = invoice.adjustments[index]
        assert line.corrects is not None
        return _adjusted(index, corrects=msgspec.structs.replace(line.corrects, **fields))(invoice)

    return change


def _part_starts_a_day_later(invoice: Invoice) -> Invoice:
    lines = list(invoice.lines)
    index = next(i for i, line in enumerate(lines) if line.part and line.part.version == 2)
    part = lines[index].part
    assert part is not None
    moved = msgspec.structs.replace(part, start=part.start + timedelta(days=1))
    lines[index] = msgspec.structs.replace(lines[index], part=moved)
    return msgspec.structs.replace(invoice, lines=tuple(lines))


def _doubled(invoice: Invoice) -> Invoice:
    return _adjusted(0, amount=invoice.adjustments[0].amount * 2)(invoice)


@pytest.mark.parametrize(
    ("change", "where", "reason"),
    [
        (
            lambda i: _adjusted(0, amount=i.adjustments[0].amount * 2)(i),
            "adjustment line 1",
            "amount",
        ),
        (_corrects(0, line=1), "adjustment line 1", "corrects"),
        (_corrects(0, invoice="acme-support-v1-2026-10"), "adjustment line 1", "corrects"),
        (_corrects(1, reason="reopened"), "adjustment line 2", "corrects"),
        (_part_starts_a_day_later, "line ", "part"),
    ],
    ids=["amount", "corrected line", "corrected invoice", "reason", "version part boundary"],
)
def test_a_changed_adjustment_or_version_split_fails_naming_the_line(
    change: Callable[[Invoice], Invoice], where: str, reason: str
) -> None:
    report = verify_bundle(_edited(change), [VERIFIER])
    assert not report.ok
    assert any(
        finding.where.startswith(where) and finding.reason.startswith(reason)
        for finding in report.findings
    ), report.lines()
