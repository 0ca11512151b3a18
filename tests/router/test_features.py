"""Router features: the same request gives the same vector in every process, text that the
ledger holds only as a commitment gives no text features, and settings out of range are refused.
What would break: a model trained in one process scoring differently in the gateway."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from raas.router.features import (
    NUMERIC_COUNT,
    FeatureConfig,
    RouteRequest,
    extract,
    text_state,
)

REQUEST = RouteRequest(
    text="Hi, I was charged twice for order 4411. Can I get a refund? sqrt(16) = 4",
    intent="billing",
    channel="chat",
    turn=2,
    earlier_failures=1,
    tools=("lookup_order",),
)


def test_same_request_same_features() -> None:
    config = FeatureConfig()
    first, second = extract(REQUEST, config), extract(REQUEST, config)
    assert first == second
    assert len(first.indices) == len(first.values)
    assert all(0 <= index < config.dimension for index in first.indices)


def test_features_are_the_same_in_another_process() -> None:
    # Python's str hash is salted per process; the features must not depend on it.
    program = (
        "import json; from raas.router.features import *; "
        f"request = RouteRequest(text={REQUEST.text!r}, intent='billing', channel='chat', "
        "turn=2, earlier_failures=1, tools=('lookup_order',)); "
        "features = extract(request, FeatureConfig()); "
        "print(json.dumps([features.indices, features.values]))"
    )
    output = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout
    features = extract(REQUEST, FeatureConfig())
    assert json.loads(output) == [features.indices, features.values]


def test_summary_names_what_was_seen() -> None:
    summary = extract(REQUEST, FeatureConfig()).summary
    assert summary["text"] == "plain"
    assert summary["question_marks"] == 1
    assert summary["operations"] == ["payment", "refund"]
    assert summary["intent"] == "billing"
    assert summary["turn"] == 2
    assert summary["earlier_failures"] == 1
    assert summary["tools"] == ["lookup_order"]
    assert isinstance(summary["math_markers"], int) and summary["math_markers"] >= 2
    assert isinstance(summary["digits"], int) and summary["digits"] >= 6


def test_committed_text_gives_only_conversation_features() -> None:
    committed = RouteRequest(text="sha256:" + "ab" * 32, intent="billing", channel="chat")
    plain = RouteRequest(text="", intent="billing", channel="chat")
    config = FeatureConfig()
    assert text_state(committed.text) == "committed"
    features = extract(committed, config)
    assert features.summary["text"] == "committed"
    assert features.summary["hashed_text_features"] == 0
    assert features.indices == extract(plain, config).indices


def test_long_text_costs_a_bounded_number_of_features() -> None:
    config = FeatureConfig()
    long = extract(RouteRequest(text="word " * 100_000), config)
    # words (capped) and word pairs, plus numeric and categorical features
    assert len(long.indices) <= 2 * config.max_tokens + NUMERIC_COUNT + 8
    assert long.summary["characters"] == 500_000


def test_word_pairs_are_ordered() -> None:
    config = FeatureConfig(word_ngrams=2)
    one = extract(RouteRequest(text="cancel order"), config)
    other = extract(RouteRequest(text="order cancel"), config)
    assert sorted(one.indices) != sorted(other.indices)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("hash_bits", 30), ("word_ngrams", 3), ("max_tokens", 0), ("version", 99)],
)
def test_settings_out_of_range_are_refused(setting: str, value: int) -> None:
    with pytest.raises(ValueError, match=setting if setting != "version" else "version 99"):
        FeatureConfig(**{setting: value})
