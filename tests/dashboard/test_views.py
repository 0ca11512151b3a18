"""Page models from figures, and invoices as files. What would break: a rate or margin computed
from the wrong counts, a chart that drops an outcome, a CSV whose amounts are not the invoice's
exact ones, a PDF that is not one."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

from raas.core.invoice import Invoice, InvoiceLine, LedgerPoint
from raas.dashboard.data import ContractFigures, PeriodCost, TierFigures, VerdictCount
from raas.dashboard.views import invoice_csv, invoice_pdf, percent, vendor_page


def figures() -> ContractFigures:
    return ContractFigures(
        contract="acme-support",
        version=1,
        buyer="acme",
        currency="USD",
        time_zone="Europe/Berlin",
        outcomes=("ai_resolution", "handoff", "unmatched", "excluded"),
        by_day=(
            VerdictCount("2026-11-01", "ai_resolution", 6),
            VerdictCount("2026-11-01", "handoff", 2),
            VerdictCount("2026-11-02", "ai_resolution", 2),
        ),
        episodes=10,
        measured=8,
        billed=8,
        resolved_by_ai=6,
        csat_mean=Decimal("4.25"),
        csat_answers=4,
        latency_p95_ms=1500,
        model_cost=Decimal("0.40"),
        tiers=(TierFigures("small", 8, 6), TierFigures("large", 2, 0)),
        size=120,
    )


def test_vendor_page_figures() -> None:
    page = vendor_page(
        figures(),
        [PeriodCost("acme-support-v1-2026-11", "2026-11", Decimal("7.92"), Decimal("0.40"))],
        [],
    )
    kpis = {kpi.label: kpi for kpi in page.kpis}
    assert kpis["Resolution rate"].value == "75.0%"  # 6 of 8 measured
    assert kpis["Model cost per outcome"].value == "0.0500 USD"  # 0.40 / 8 billed
    assert kpis["CSAT"].value == "4.25 / 5"
    assert kpis["p95 latency"].value == "1,500 ms"
    assert kpis["Margin"].value == "7.5200 USD"
    assert page.margins[0].margin == Decimal("7.5200")
    assert [(tier.tier, tier.share, tier.success_rate) for tier in page.tiers] == [
        ("small", "80.0%", "75.0%"),
        ("large", "20.0%", "0.0%"),
    ]
    # Outcomes with episodes are charted per day; those without any are left out of the legend.
    assert "11-01: ai_resolution 6" in page.outcomes_chart
    assert "11-02: ai_resolution 2" in page.outcomes_chart
    assert "unmatched" not in page.outcomes_chart


def test_percent_of_nothing_is_a_dash_not_an_error() -> None:
    assert percent(0, 0) == "—"
    assert percent(1, 3) == "33.3%"


def invoice() -> Invoice:
    return Invoice(
        id="acme-support-v1-2026-11",
        contract="acme-support",
        contract_version=1,
        vendor="helpdesk-ai",
        buyer="acme",
        currency="EUR",
        time_zone="Europe/Berlin",
        period="2026-11",
        period_start=datetime(2026, 10, 31, 23, tzinfo=UTC),
        period_end=datetime(2026, 11, 30, 23, tzinfo=UTC),
        as_of=datetime(2026, 12, 4, tzinfo=UTC),
        ledger=LedgerPoint(tenant="acme", size=99),
        rounding="half_even per line",
        lines=(
            InvoiceLine(
                outcome="ai_resolution",
                description="Résolution par l'IA",
                quantity=3,
                unit_price=Decimal("0.99"),
                amount=Decimal("2.97"),
                episodes=("c1#refund", "c2#refund", "c3#order"),
            ),
        ),
        total=Decimal("2.97"),
        not_billed={"handoff": 1},
        provisional=0,
    )


def test_invoice_csv_has_exact_amounts_and_a_total_row() -> None:
    rows = list(csv.reader(io.StringIO(invoice_csv(invoice()))))
    assert rows[0][:3] == ["invoice", "line", "kind"]
    assert rows[1][4:10] == ["Résolution par l'IA", "3", "0.99", "2.97", "EUR", "3"]
    assert rows[-1][1] == "total" and rows[-1][7] == "2.97"


def test_invoice_pdf_is_a_pdf_and_the_same_for_the_same_invoice() -> None:
    body = invoice_pdf(invoice())
    assert body.startswith(b"%PDF-")
    assert body.rstrip().endswith(b"%%EOF")
    assert invoice_pdf(invoice()) == body  # same invoice, same bytes
