"""Charts as SVG text, drawn on the server from the project's own figures. Pure: data in, a
string out, so a page needs no script to show them and a test can read what they say.

Every chart carries a <title> and per-mark <title>s (the browser shows them on hover, screen
readers read them) and a legend in words, so nothing is said by colour alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from html import escape as _escape
from typing import Final

# Distinguishable on white and for the common colour-vision deficiencies (Okabe-Ito).
PALETTE: Final = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
)
FONT: Final = 'font-family="system-ui, sans-serif" font-size="11"'


# Characters XML 1.0 does not allow in text (control characters other than tab and newlines).
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def escape(text: str) -> str:
    """Text as SVG character data: escaped, and without characters XML cannot hold."""
    return _escape(_NOT_XML.sub("\ufffd", text))


def colour(index: int) -> str:
    """The series colour at `index` (the palette repeats)."""
    return PALETTE[index % len(PALETTE)]


def stacked_bars(
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[int]],
    *,
    width: int = 720,
    height: int = 240,
) -> str:
    """A stacked column per category (say a day), one coloured band per series (say an outcome).

    Every sequence in `series` runs beside `categories`. The y axis starts at 0 and ends at the
    tallest column, with its value written at the top."""
    for name, values in series.items():
        if len(values) != len(categories):
            raise ValueError(
                f"series {name!r} has {len(values)} values for {len(categories)} categories"
            )
    left, right, top, bottom = 44, 8, 18, 34
    legend_height = 18 * ((len(series) + 3) // 4)
    plot_width = width - left - right
    plot_height = height - top - bottom
    totals = [sum(values[index] for values in series.values()) for index in range(len(categories))]
    peak = max(totals, default=0) or 1
    parts = [_open(width, height + legend_height, title)]
    parts.append(_axis(left, top, plot_width, plot_height, str(peak)))
    slot = plot_width / max(len(categories), 1)
    bar = max(slot * 0.8, 1.0)
    label_every = max(1, len(categories) // 12)
    for index, category in enumerate(categories):
        x = left + index * slot + (slot - bar) / 2
        base = float(top + plot_height)
        for number, (name, values) in enumerate(series.items()):
            value = values[index]
            if value <= 0:
                continue
            band = plot_height * value / peak
            base -= band
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{band:.1f}" '
                f'fill="{colour(number)}"><title>{escape(category)}: {escape(name)} '
                f"{value:,}</title></rect>"
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + plot_height + 14}" text-anchor="middle" '
                f"{FONT}>{escape(category)}</text>"
            )
    parts.append(_legend(list(series), width, height))
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bars(
    title: str,
    items: Sequence[tuple[str, int | Decimal]],
    *,
    width: int = 360,
    value_format: str = "{:,}",
) -> str:
    """One bar per (label, value), longest first as given; values must not be negative."""
    row, label_width, value_width = 22, 110, 70
    height = max(len(items), 1) * row + 8
    peak = max((value for _label, value in items), default=0) or 1
    bar_space = width - label_width - value_width
    parts = [_open(width, height, title)]
    for index, (label, value) in enumerate(items):
        if value < 0:
            raise ValueError(f"bar {label!r} has a negative value {value}")
        y = 4 + index * row
        length = bar_space * float(Decimal(value) / Decimal(peak))
        text = value_format.format(value)
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 14}" text-anchor="end" {FONT}>'
            f"{escape(label)}</text>"
            f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{row - 8}" '
            f'fill="{colour(index)}"><title>{escape(label)}: {escape(text)}</title></rect>'
            f'<text x="{label_width + length + 4:.1f}" y="{y + 14}" {FONT}>{escape(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
    )


def _axis(left: int, top: int, width: int, height: int, peak_label: str) -> str:
    bottom = top + height
    return (
        f'<line x1="{left}" y1="{bottom}" x2="{left + width}" y2="{bottom}" stroke="#888"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#888"/>'
        f'<line x1="{left - 3}" y1="{top}" x2="{left + width}" y2="{top}" stroke="#ddd"/>'
        f'<text x="{left - 5}" y="{top + 4}" text-anchor="end" {FONT}>{escape(peak_label)}</text>'
        f'<text x="{left - 5}" y="{bottom}" text-anchor="end" {FONT}>0</text>'
    )


def _legend(names: Sequence[str], width: int, y: int) -> str:
    column = width // 4
    parts = []
    for index, name in enumerate(names):
        x = 8 + (index % 4) * column
        row_y = y + (index // 4) * 18
        parts.append(
            f'<rect x="{x}" y="{row_y}" width="10" height="10" fill="{colour(index)}"/>'
            f'<text x="{x + 14}" y="{row_y + 9}" {FONT}>{escape(name)}</text>'
        )
    return "".join(parts)
