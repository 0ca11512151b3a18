"""Page models: the figures a page shows, computed from the structs `raas.dashboard.data` reads
and from invoices. Pure: no database, no request; the templates only lay them out.

Money stays Decimal; rates are Decimal fractions rounded for display only; times are shown in the
contract's zone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec

from raas.core.invoice import Invoice
from raas.dashboard.charts import horizontal_bars, stacked_bars
from raas.dashboard.data import ContractFigures, EpisodeDetail, PeriodCost, ReviewItem
from raas.dashboard.disputes import Dispute

PERCENT_PLACES: Final = Decimal("0.1")
COST_PLACES: Final = Decimal("0.0001")


class Kpi(msgspec.Struct, frozen=True):
    label: str
    value: str
    note: str = ""


class MarginRow(msgspec.Struct, frozen=True):
    invoice_id: str
    period: str
    revenue: Decimal
    model_cost: Decimal
    margin: Decimal
    margin_percent: str


class TierRow(msgspec.Struct, frozen=True):
    tier: str
    episodes: int
    share: str
    success_rate: str


class VendorPage(msgspec.Struct, frozen=True, kw_only=True):
    contract: str
    buyer: str
    currency: str
    size: int
    kpis: tuple[Kpi, ...]
    outcomes_chart: str
    tiers_chart: str
    tiers: tuple[TierRow, ...]
    margins: tuple[MarginRow, ...]
    queue: tuple[ReviewItem, ...]
    contract_name: str
    version: int
    open_disputes: tuple[Dispute, ...]
    ruled_disputes: tuple[Dispute, ...]


def percent(numerator: int | Decimal, denominator: int | Decimal) -> str:
    """A ratio as a percentage with one decimal place; an em dash when there is nothing to
    divide by."""
    if not denominator:
        return "—"
    value = (Decimal(numerator) * 100 / Decimal(denominator)).quantize(
        PERCENT_PLACES, rounding=ROUND_HALF_EVEN
    )
    return f"{value}%"


def vendor_page(
    figures: ContractFigures,
    costs: Sequence[PeriodCost],
    queue: Sequence[ReviewItem],
    disputes: Sequence[Dispute] = (),
) -> VendorPage:
    """The vendor's overview of one contract; open disputes head the review queue."""
    currency = figures.currency
    days = sorted({count.day for count in figures.by_day})
    position = {day: index for index, day in enumerate(days)}
    series: dict[str, list[int]] = {name: [0] * len(days) for name in figures.outcomes}
    for count in figures.by_day:
        series[count.outcome][position[count.day]] += count.episodes
    series = {name: values for name, values in series.items() if any(values)}
    cost_per_outcome = (
        (figures.model_cost / figures.billed).quantize(COST_PLACES) if figures.billed else None
    )
    revenue = sum((cost.revenue for cost in costs), Decimal(0))
    spent = sum((cost.model_cost for cost in costs), Decimal(0))
    kpis = (
        Kpi("Episodes", f"{figures.episodes:,}", f"ledger size {figures.size:,}"),
        Kpi(
            "Resolution rate",
            percent(figures.resolved_by_ai, figures.measured),
            "billed with no human takeover / not excluded",
        ),
        Kpi("Billed outcomes", f"{figures.billed:,}"),
        Kpi(
            "CSAT",
            "—" if figures.csat_mean is None else f"{figures.csat_mean:.2f} / 5",
            f"{figures.csat_answers:,} answers",
        ),
        Kpi(
            "p95 latency",
            "—" if figures.latency_p95_ms is None else f"{figures.latency_p95_ms:,} ms",
            "slowest model call per episode",
        ),
        Kpi(
            "Model cost per outcome",
            "—" if cost_per_outcome is None else f"{cost_per_outcome} {currency}",
            f"{figures.model_cost.quantize(COST_PLACES)} {currency} in all",
        ),
        Kpi(
            "Margin",
            f"{(revenue - spent).quantize(COST_PLACES)} {currency}",
            f"{percent(revenue - spent, revenue)} of invoiced {revenue} {currency}",
        ),
    )
    total_tier_episodes = sum(tier.episodes for tier in figures.tiers)
    tiers = tuple(
        TierRow(
            tier.tier,
            tier.episodes,
            percent(tier.episodes, total_tier_episodes),
            percent(tier.successes, tier.episodes),
        )
        for tier in figures.tiers
    )
    margins = tuple(
        MarginRow(
            cost.invoice_id,
            cost.period,
            cost.revenue,
            cost.model_cost.quantize(COST_PLACES),
            (cost.revenue - cost.model_cost).quantize(COST_PLACES),
            percent(cost.revenue - cost.model_cost, cost.revenue),
        )
        for cost in costs
    )
    return VendorPage(
        contract=f"{figures.contract} v{figures.version}",
        buyer=figures.buyer,
        currency=currency,
        size=figures.size,
        kpis=kpis,
        outcomes_chart=stacked_bars(
            f"Episodes by outcome per day ({figures.time_zone})",
            [day[5:] for day in days],
            series,
        ),
        tiers_chart=horizontal_bars(
            "Episodes served per tier", [(tier.tier, tier.episodes) for tier in figures.tiers]
        ),
        tiers=tiers,
        margins=margins,
        queue=tuple(queue),
        contract_name=figures.contract,
        version=figures.version,
        open_disputes=tuple(dispute for dispute in disputes if dispute.status == "open"),
        ruled_disputes=tuple(dispute for dispute in disputes if dispute.status != "open"),
    )


def local_time(moment: datetime, time_zone: str) -> str:
    """A moment as "YYYY-MM-DD HH:MM:SS" in `time_zone`."""
    return moment.astimezone(ZoneInfo(time_zone)).strftime("%Y-%m-%d %H:%M:%S")


class TranscriptLine(msgspec.Struct, frozen=True):
    time: str
    who: str
    text: str
    conversation: str


class EventRow(msgspec.Struct, frozen=True):
    log_index: int
    time: str
    type: str
    conversation: str
    summary: str


def transcript(detail: EpisodeDetail, time_zone: str) -> list[TranscriptLine]:
    """What was said in the episode, in the order it was said, with handoffs marked."""
    lines: list[TranscriptLine] = []
    for event in sorted(detail.revealed, key=lambda event: (event.time, event.id)):
        data = event.data
        kind = event.type.removeprefix("dev.raas.")
        if kind == "message":
            who, text = data.role.replace("_", " "), data.text
        elif kind == "handoff":
            passed = "with" if data.context_passed else "without"
            who, text = "system", f"handed off to a human {passed} context"
        elif kind == "recontact":
            who, text = "system", f"the customer came back about {data.previous_conversation}"
        else:
            continue
        lines.append(
            TranscriptLine(local_time(event.time, time_zone), who, text, event.conversation)
        )
    return lines


def event_rows(detail: EpisodeDetail, time_zone: str) -> list[EventRow]:
    """Every ledger entry behind the episode, with its data in one line (personal fields as
    their commitments: the entry as the proof covers it)."""
    rows: list[EventRow] = []
    for stored in detail.events:
        event = stored.event
        data: dict[str, Any] = msgspec.to_builtins(event.data)
        summary = ", ".join(f"{key}={value}" for key, value in sorted(data.items()))
        rows.append(
            EventRow(
                stored.log_index,
                local_time(event.time, time_zone),
                event.type.removeprefix("dev.raas."),
                event.conversation,
                summary,
            )
        )
    return rows


# -- invoices as files -------------------------------------------------------------------------

CSV_COLUMNS: Final = (
    "invoice",
    "line",
    "kind",
    "outcome",
    "description",
    "quantity",
    "unit_price",
    "amount",
    "currency",
    "episodes",
    "corrects",
)


def _corrects(line: object) -> str:
    """An adjustment line's correction as "<invoice> line <n> (<reason>)"; "" on other lines
    (and on invoices of a raas that has no adjustments)."""
    fix = getattr(line, "corrects", None)
    if fix is None:
        return ""
    where = "a new line" if fix.line is None else f"line {fix.line + 1}"
    return f"{fix.invoice} {where} ({fix.reason})"


def invoice_csv(invoice: Invoice) -> str:
    """One row per line (amounts as written, exact), then the total, then each adjustment with
    the issued line it corrects (numbered a1, a2...); episodes are counted here and listed in
    the JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    adjustments = getattr(invoice, "adjustments", ())
    numbered = [(str(number), line) for number, line in enumerate(invoice.lines, start=1)]
    for label, line in numbered:
        writer.writerow(_csv_row(invoice, label, line))
    writer.writerow(
        (invoice.id, "total", "", "", "", "", "", invoice.total, invoice.currency, "", "")
    )
    for number, line in enumerate(adjustments, start=1):
        writer.writerow(_csv_row(invoice, f"a{number}", line))
    return buffer.getvalue()


def _csv_row(invoice: Invoice, label: str, line: Any) -> tuple[object, ...]:
    return (
        invoice.id,
        label,
        line.kind,
        line.outcome,
        line.description,
        line.quantity,
        line.unit_price,
        line.amount,
        invoice.currency,
        len(line.episodes),
        _corrects(line),
    )


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice as a one-table PDF (fpdf2, its built-in Helvetica: text outside Latin-1 is
    replaced by "?")."""
    from fpdf import FPDF

    def text(value: object) -> str:
        return str(value).encode("latin-1", "replace").decode("latin-1")

    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_creation_date(invoice.as_of)
    pdf.set_title(text(f"Invoice {invoice.id}"))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, text(f"Invoice {invoice.id}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    for label, value in (
        ("From", invoice.vendor),
        ("To", invoice.buyer),
        ("Contract", f"{invoice.contract} version {invoice.contract_version}"),
        (
            "Period",
            f"{invoice.period}: {invoice.period_start.isoformat()} to "
            f"{invoice.period_end.isoformat()} ({invoice.time_zone})",
        ),
        ("Ledger", f"log of {invoice.ledger.tenant}, first {invoice.ledger.size:,} entries"),
    ):
        pdf.cell(30, 6, text(label))
        pdf.cell(0, 6, text(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    widths = (80, 30, 35, 45)
    pdf.set_font("Helvetica", "B", 10)
    for width, heading in zip(widths, ("Line", "Quantity", "Unit price", "Amount"), strict=True):
        pdf.cell(width, 7, heading, border="B", align="L" if heading == "Line" else "R")
    pdf.ln()
    pdf.set_font("Helvetica", "", 10)
    for line in invoice.lines:
        cells = (
            line.description,
            f"{line.quantity:,}",
            f"{line.unit_price:,}",
            f"{line.amount:,} {invoice.currency}",
        )
        for index, (width, value) in enumerate(zip(widths, cells, strict=True)):
            pdf.cell(width, 7, text(value)[:60], align="L" if index == 0 else "R")
        pdf.ln()
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(sum(widths[:3]), 8, "Total", border="T")
    pdf.cell(widths[3], 8, text(f"{invoice.total:,} {invoice.currency}"), border="T", align="R")
    adjustments = getattr(invoice, "adjustments", ())
    if adjustments:
        pdf.ln(12)
        pdf.cell(0, 7, "Adjustments", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
        for line in adjustments:
            pdf.cell(sum(widths[:3]), 6, text(f"{line.description}: {_corrects(line)}")[:95])
            pdf.cell(widths[3], 6, text(f"{line.amount:,} {invoice.currency}"), align="R")
            pdf.ln()
        pdf.set_font("Helvetica", "B", 10)
        due = getattr(invoice, "due", invoice.total)
        pdf.cell(sum(widths[:3]), 8, "Due", border="T")
        pdf.cell(widths[3], 8, text(f"{due:,} {invoice.currency}"), border="T", align="R")
    return bytes(pdf.output())
