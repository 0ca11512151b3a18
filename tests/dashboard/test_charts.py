"""Charts are SVG text made from figures: what would break is a chart that says something the
figures do not (a wrong peak, a band for an empty value, a label that injects markup)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raas.dashboard.charts import horizontal_bars, stacked_bars

SVG = "{http://www.w3.org/2000/svg}"


def test_stacked_bars_draw_one_band_per_nonzero_value_and_state_the_peak() -> None:
    svg = stacked_bars("Outcomes", ["11-01", "11-02"], {"ai_resolution": [3, 0], "handoff": [1, 2]})
    root = ElementTree.fromstring(svg)
    titles = [element.text for element in root.iter(f"{SVG}title")]
    assert titles[0] == "Outcomes"
    assert "11-01: ai_resolution 3" in titles
    assert "11-02: handoff 2" in titles
    assert not any(title and title.startswith("11-02: ai_resolution") for title in titles)
    texts = [element.text for element in root.iter(f"{SVG}text")]
    assert "4" in texts  # the tallest column, 3 + 1
    assert {"ai_resolution", "handoff"} <= set(texts)


def test_bands_of_a_column_add_up_to_its_share_of_the_plot() -> None:
    svg = stacked_bars("t", ["a", "b"], {"x": [2, 1], "y": [2, 0]}, height=240)
    heights = [float(value) for value in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    plot_height = 240 - 18 - 34
    # column a is the peak (4): its two bands fill the plot; column b holds a quarter.
    assert heights[0] + heights[1] == pytest.approx(plot_height, abs=0.2)
    assert heights[2] == pytest.approx(plot_height / 4, abs=0.2)


def test_labels_are_escaped() -> None:
    svg = horizontal_bars("<tiers>", [("<script>alert(1)</script>", 3)])
    assert "<script>" not in svg
    ElementTree.fromstring(svg)


def test_series_must_run_beside_categories_and_bars_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="2 values for 1 categories"):
        stacked_bars("t", ["a"], {"x": [1, 2]})
    with pytest.raises(ValueError, match="negative"):
        horizontal_bars("t", [("small", Decimal(-1))])


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=12), st.integers(min_value=0, max_value=10**9)),
        max_size=12,
    )
)
def test_any_bars_are_well_formed_svg_and_the_longest_is_the_largest(
    items: list[tuple[str, int]],
) -> None:
    svg = horizontal_bars("t", items)
    root = ElementTree.fromstring(svg)
    widths = [float(rect.get("width", "0")) for rect in root.iter(f"{SVG}rect")]
    assert len(widths) == len(items)
    if items and max(value for _label, value in items) > 0:
        largest = max(range(len(items)), key=lambda index: items[index][1])
        assert widths[largest] == max(widths)
