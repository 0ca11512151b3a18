"""The judge's rule for AI resolutions, at its edges: a mistake here bills the buyer for a
problem that came back, or forgets to bill one that did not."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from factories import NOVEMBER, conversation, entries, last_ai_answer
from raas.core.contract import AiResolutionRule, Contract, HandoffRule, Outcomes
from raas.core.episodes import derive_episodes
from raas.core.judge import judge_episode


def contract(window_hours: int = 72) -> Contract:
    return Contract(
        contract="acme-support",
        version=1,
        effective_from=date(2026, 11, 1),
        vendor="helpdesk-ai",
        buyer="acme",
        currency="USD",
        time_zone="Europe/Berlin",
        outcomes=Outcomes(
            ai_resolution=AiResolutionRule(
                price=Decimal("0.99"), recontact_window_hours=window_hours
            ),
            handoff=HandoffRule(price=Decimal(0)),
        ),
    )


def judged(events, window_hours: int = 72):  # type: ignore[no-untyped-def]
    return [judge_episode(contract(window_hours), e) for e in derive_episodes(entries(events))]


@pytest.mark.parametrize("window_hours", [1, 24, 72, 168])
@pytest.mark.parametrize(
    ("offset_seconds", "kind"), [(-1, "reopened"), (0, "ai_resolution"), (1, "ai_resolution")]
)
def test_recontact_one_second_inside_the_window_unbills_and_outside_does_not(
    window_hours: int, offset_seconds: int, kind: str
) -> None:
    first = conversation("c1")
    resolved_at = last_ai_answer(first, "refund")
    back_at = resolved_at + timedelta(hours=window_hours, seconds=offset_seconds)
    later = conversation("c2", start=back_at, recontact_of="c1")
    [outcome] = judged(first + later, window_hours)
    assert outcome.kind == kind
    assert outcome.final_at == resolved_at + timedelta(hours=window_hours)


def test_confirmed_resolution_is_billed_even_if_the_customer_comes_back() -> None:
    first = conversation("c1", confirm=True)
    later = conversation("c2", start=NOVEMBER + timedelta(hours=1), recontact_of="c1")
    [outcome] = judged(first + later)
    assert (outcome.kind, outcome.basis) == ("ai_resolution", "confirmed")


def test_customer_saying_not_resolved_is_unresolved() -> None:
    [outcome] = judged(conversation("c1", confirm=False))
    assert outcome.kind == "unresolved"
    assert "not resolved" in outcome.reason


def test_no_recontact_is_an_assumed_resolution_final_when_the_window_closes() -> None:
    events = conversation("c1")
    [outcome] = judged(events)
    assert (outcome.kind, outcome.basis) == ("ai_resolution", "assumed")
    assert outcome.final_at == last_ai_answer(events, "refund") + timedelta(hours=72)
    assert "did not come back" in outcome.reason


def test_handoffs_are_handoffs_and_final_at_once() -> None:
    events = conversation("c1", handoff="with")
    [outcome] = judged(events)
    assert outcome.kind == "handoff" and "with context" in outcome.reason
    [outcome] = judged(conversation("c1", handoff="without"))
    assert "without context" in outcome.reason


def test_handoff_after_the_window_closed_does_not_unbill() -> None:
    first = conversation("c1")
    later = conversation(
        "c2", start=NOVEMBER + timedelta(days=5), recontact_of="c1", handoff="with"
    )
    [outcome] = judged(first + later)
    assert outcome.kind == "ai_resolution"
    assert "outside the 72h window" in outcome.reason


def test_each_problem_of_a_multi_problem_conversation_is_judged_once() -> None:
    outcomes = judged(conversation("c1", intents=("refund", "delivery", "password")))
    assert [o.kind for o in outcomes] == ["ai_resolution"] * 3
    assert len({o.episode_id for o in outcomes}) == 3
