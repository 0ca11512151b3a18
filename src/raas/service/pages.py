"""Readable HTML pages rendered from core objects: no scripts, no network, one file each."""

from __future__ import annotations

from decimal import Decimal
from functools import cache

import jinja2

from raas.core.invoice import Invoice

# A line's episode list is long; the page shows this many and says how many more the JSON holds.
EPISODES_SHOWN_MAX = 500


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("raas.service", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_invoice_html(invoice: Invoice) -> str:
    template = _environment().get_template("invoice.html")
    return template.render(
        invoice=invoice,
        money=lambda amount: _money(amount, invoice.currency),
        episodes_shown_max=EPISODES_SHOWN_MAX,
    )


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount:,} {currency}"
