"""The judge at its edges: a mistake here bills the buyer for a problem that came back, forgets
to bill one that did not, bills an outcome before it is final, lets a failed review or excluded
traffic through, or folds a conversation's problems into the wrong outcome.

`format_one_outcome` below is the first format's judge as it shipped (before contracts had
rules), kept as the specification that `format_one_rules` must reproduce: test_settle.py checks
them against each other over generated workloads."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest

from factories import NOVEMBER, SOURCE, conversation, entries, last_ai_answer
from raas.core.contract import (
    Contract,
    GateTerms,
    OutcomeTerms,
    Weights,
    format_one_pricing,
    format_one_rules,
)
from raas.core.episodes import Episode, derive_episodes
from raas.core.events import CustomerConfirmation, Event, make_event
from raas.core.judge import Judge, Outcome, judge, judge_episode
from raas.core.plan import EXCLUDED, NO_OUTCOME, CompiledPlan, Verdict, plan_of


def contract(window_hours: int = 72, price: str = "0.99") -> Contract:
    """acme-support in the first format: AI resolutions at a price, handoffs free."""
    return Contract(
        contract="acme-support",
        version=1,
        effective_from=date(2026, 11, 1),
        vendor="helpdesk-ai",
        buyer="acme",
        currency="USD",
        time_zone="Europe/Berlin",
        outcomes=format_one_rules(timedelta(hours=window_hours)),  # type: ignore[arg-type]
        window=timedelta(hours=window_hours),
        pricing=format_one_pricing(Decimal(price)),
    )


def rules_contract(**changes: object) -> Contract:
    """A contract with rules written out: the Intercom-style outcomes used below."""
    outcomes = {
        "handoff": OutcomeTerms(when="handed_off", billable=False, final_at="handoff_at"),
        "confirmed_resolution": OutcomeTerms(
            when="ai_answered and confirmed and not recontact_within(72h)", price=Decimal("0.99")
        ),
        "assumed_resolution": OutcomeTerms(
            when="ai_answered and confirmed is null and not recontact_within(72h)",
            price=Decimal("0.79"),
        ),
        "unresolved": OutcomeTerms(when="true", billable=False),
    }
    fields: dict[str, object] = {
        "contract": "rules",
        "version": 1,
        "effective_from": date(2026, 11, 1),
        "vendor": "helpdesk-ai",
        "buyer": "acme",
        "currency": "USD",
        "time_zone": "Europe/Berlin",
        "outcomes": outcomes,
        **changes,
    }
    return Contract(**fields)  # type: ignore[arg-type]


def judged(events: list[Event], window_hours: int = 72) -> list[Outcome]:
    return [judge_episode(contract(window_hours), e) for e in derive_episodes(entries(events))]


def format_one_outcome(episode: Episode, window_hours: int) -> tuple[str, datetime]:
    """The first format's judge, verbatim in its logic: (outcome kind, final at)."""
    window = timedelta(hours=window_hours)
    resolution_at = episode.resolution_at
    handoff_at = episode.handoff_at
    if handoff_at is not None and (resolution_at is None or handoff_at < resolution_at + window):
        return "handoff", handoff_at
    if resolution_at is None:
        return "unresolved", episode.last_activity_at + window
    closes = resolution_at + window
    confirmed_in_window = episode.confirmed_at is not None and episode.confirmed_at < closes
    if confirmed_in_window and episode.confirmed is True:
        return "ai_resolution", closes
    if confirmed_in_window and episode.confirmed is False:
        return "unresolved", closes
    if episode.recontact_at is not None and episode.recontact_at < closes:
        return "reopened", closes
    return "ai_resolution", closes


# -- the first format, at its edges ---------------------------------------------------------


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
    assert outcome.billable is (kind == "ai_resolution")
    assert outcome.final_at == resolved_at + timedelta(hours=window_hours)


def test_confirmed_resolution_is_billed_even_if_the_customer_comes_back() -> None:
    first = conversation("c1", confirm=True)
    later = conversation("c2", start=NOVEMBER + timedelta(hours=1), recontact_of="c1")
    [outcome] = judged(first + later)
    assert outcome.kind == "ai_resolution"
    assert outcome.reason == "the customer confirmed the problem resolved"


def test_customer_saying_not_resolved_is_unresolved() -> None:
    [outcome] = judged(conversation("c1", confirm=False))
    assert (outcome.kind, outcome.billable) == ("unresolved", False)
    assert "not resolved" in outcome.reason


def test_no_recontact_is_an_assumed_resolution_final_when_the_window_closes() -> None:
    events = conversation("c1")
    [outcome] = judged(events)
    assert outcome.kind == "ai_resolution"
    assert outcome.final_at == last_ai_answer(events, "refund") + timedelta(hours=72)
    assert "did not come back" in outcome.reason


@pytest.mark.parametrize("resolved", [True, False])
@pytest.mark.parametrize(("offset_seconds", "inside"), [(-1, True), (0, False)])
def test_a_confirmation_counts_only_inside_the_window(
    resolved: bool, offset_seconds: int, inside: bool
) -> None:
    first = conversation("c1")
    resolved_at = last_ai_answer(first, "refund")
    answer = make_event(
        CustomerConfirmation(resolved=resolved),
        id="late-answer",
        source=SOURCE,
        time=resolved_at + timedelta(hours=72, seconds=offset_seconds),
        tenant="acme",
        customer="customer-1",
        conversation="c1",
        intent="refund",
    )
    [outcome] = judged([*first, answer])
    [episode] = derive_episodes(entries([*first, answer]))
    assert (outcome.kind, outcome.final_at) == format_one_outcome(episode, 72)
    if inside and not resolved:
        assert outcome.kind == "unresolved"
    else:
        assert outcome.kind == "ai_resolution"
    confirmed_inside = inside and resolved
    assert (outcome.reason == "the customer confirmed the problem resolved") is confirmed_inside


def test_handoffs_are_handoffs_and_final_at_once() -> None:
    events = conversation("c1", handoff="with")
    [outcome] = judged(events)
    assert outcome.kind == "handoff" and "with context" in outcome.reason
    handoff_at = min(event.time for event in events if event.type.endswith("handoff"))
    assert outcome.final_at == handoff_at
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


def test_the_first_format_rules_read_as_the_spec_says() -> None:
    """The rules a first-format file stands for, written out: a reviewer can read them."""
    rules = format_one_rules(timedelta(hours=72))
    assert list(rules) == ["handoff", "unresolved", "ai_resolution", "reopened"]
    assert rules["ai_resolution"].when == (
        "(confirmed and confirmation_delay < 72h) or not recontact_within(72h)"
    )
    assert rules["handoff"].final_at == "handoff_at"
    assert [name for name, terms in rules.items() if terms.billable] == [
        "handoff",
        "ai_resolution",
    ]


# -- rules ------------------------------------------------------------------------------------


def test_the_first_rule_in_contract_order_wins() -> None:
    """A confirmed answer followed by a handoff is a handoff when handoff comes first."""
    confirmed = conversation("c1", confirm=True)
    handed = conversation(
        "c2", start=NOVEMBER + timedelta(hours=1), recontact_of="c1", handoff="with"
    )
    [episode] = derive_episodes(entries(confirmed + handed))
    assert episode.handed_off and episode.confirmed
    assert Judge(rules_contract()).judge(episode).kind == "handoff"
    reordered = rules_contract(
        outcomes={
            "confirmed_resolution": OutcomeTerms(when="confirmed", price=Decimal("0.99")),
            "handoff": OutcomeTerms(when="handed_off", billable=False),
        }
    )
    assert Judge(reordered).judge(episode).kind == "confirmed_resolution"


def test_confirmed_and_assumed_resolutions_are_separate_outcomes() -> None:
    [confirmed] = derive_episodes(entries(conversation("c1", confirm=True)))
    [assumed] = derive_episodes(entries(conversation("c2", customer="bob")))
    [refused] = derive_episodes(entries(conversation("c3", customer="cat", confirm=False)))
    found = list(judge(rules_contract(), [confirmed, assumed, refused]))
    assert [(o.kind, o.billable) for o in found] == [
        ("confirmed_resolution", True),
        ("assumed_resolution", True),
        ("unresolved", False),
    ]
    assert found[0].reason == (
        "matched confirmed_resolution: ai_answered and confirmed and not recontact_within(72h)"
    )


def test_a_handoff_rule_with_final_at_is_final_at_the_handoff_and_others_at_the_window() -> None:
    events = conversation("c1", handoff="without")
    [episode] = derive_episodes(entries(events))
    outcome = Judge(rules_contract()).judge(episode)
    handoff_at = episode.handoff_at
    assert handoff_at is not None and outcome.final_at == handoff_at
    plain = rules_contract(
        outcomes={
            "handoff": OutcomeTerms(when="handed_off", price=Decimal(1)),
        }
    )
    # Without final_at the window decides; the AI never answered, so it opens at the last event.
    assert Judge(plain).judge(episode).final_at == episode.last_activity_at + timedelta(hours=72)


def test_a_failed_gate_unbills_and_names_the_gate() -> None:
    gated = rules_contract(
        gates=(
            GateTerms(name="csat_floor", require="csat is null or csat >= 3"),
            GateTerms(name="review", require="coalesce(review_passed, true)"),
        )
    )
    cases = {
        "happy": (conversation("a", confirm=True, csat=5, review=True), True, None),
        "unhappy": (conversation("b", confirm=True, csat=2), False, "csat_floor"),
        "failed review": (conversation("c", confirm=True, review=False), False, "review"),
        "not reviewed": (conversation("d", confirm=True), True, None),
    }
    for name, (events, billable, gate) in cases.items():
        [episode] = derive_episodes(entries(events))
        outcome = Judge(gated).judge(episode)
        assert outcome.kind == "confirmed_resolution", name
        assert (outcome.billable, outcome.gate) == (billable, gate), name
    # A gate never touches an outcome that is not billed anyway.
    [handed] = derive_episodes(entries(conversation("e", handoff="with", csat=1)))
    assert Judge(gated).judge(handed).gate is None


def test_excluded_traffic_is_excluded_before_any_rule() -> None:
    excluding = rules_contract(exclude='intent in ["test", "spam"]')
    [test_traffic] = derive_episodes(entries(conversation("a", intents=("test",), confirm=True)))
    [real] = derive_episodes(entries(conversation("b", confirm=True)))
    assert Judge(excluding).judge(test_traffic).kind == EXCLUDED
    assert not Judge(excluding).judge(test_traffic).billable
    assert Judge(excluding).judge(real).kind == "confirmed_resolution"


def test_weights_come_from_the_stated_feature_with_a_default() -> None:
    weighted = rules_contract(
        weights=Weights(feature="intent", values={"contract_review": Decimal("2.5")})
    )
    [hard] = derive_episodes(entries(conversation("a", intents=("contract_review",))))
    [easy] = derive_episodes(entries(conversation("b", intents=("refund",))))
    assert Judge(weighted).judge(hard).weight == Decimal("2.5")
    assert Judge(weighted).judge(easy).weight == Decimal(1)


def test_without_a_catch_all_an_episode_can_match_nothing() -> None:
    narrow = rules_contract(
        outcomes={"confirmed_resolution": OutcomeTerms(when="confirmed", price=Decimal(1))}
    )
    [episode] = derive_episodes(entries(conversation("a")))
    assert Judge(narrow).judge(episode).kind == NO_OUTCOME
    assert plan_of(narrow).not_billed_kinds() == (NO_OUTCOME,)
    assert plan_of(rules_contract()).not_billed_kinds() == ("handoff", "unresolved")
    assert plan_of(contract()).not_billed_kinds() == ("unresolved", "reopened")


# -- counting per conversation ----------------------------------------------------------------


def verdict(
    outcome: str, billable: bool = True, gate: str | None = None, weight: int = 1
) -> Verdict:
    return Verdict(outcome, billable, "", Decimal(weight), gate)


def test_a_conversation_takes_the_first_outcome_in_contract_order_among_its_episodes() -> None:
    compiled = CompiledPlan(plan_of(rules_contract()))
    fold = compiled.conversation_verdict
    resolved, handed = verdict("confirmed_resolution"), verdict("handoff", billable=False)
    assert fold([("c#b", resolved), ("c#a", handed)]) == ("c#a", handed)
    assert fold([("c#b", resolved), ("c#a", resolved)]) == ("c#a", resolved)
    excluded = verdict(EXCLUDED, billable=False)
    assert fold([("c#a", handed), ("c#z", excluded)]) == ("c#z", excluded)
    unmatched = verdict(NO_OUTCOME, billable=False)
    assert fold([("c#a", unmatched), ("c#b", resolved)])[1] == resolved


def test_one_failed_gate_unbills_the_conversation_and_weights_take_the_largest() -> None:
    fold = CompiledPlan(plan_of(rules_contract())).conversation_verdict
    good = verdict("confirmed_resolution", weight=2)
    failed = verdict("confirmed_resolution", billable=False, gate="csat_floor")
    counted, folded = fold([("c#a", good), ("c#b", failed)])
    assert counted == "c#b"
    assert (folded.billable, folded.gate, folded.weight) == (False, "csat_floor", Decimal(2))
    with pytest.raises(ValueError, match="at least one episode"):
        fold([])


def test_the_same_contract_object_reuses_its_compiled_plan() -> None:
    """judge_episode is called per episode by the auditor and the router: it must not compile
    the plan every time, and must not reuse another contract's."""
    [episode] = derive_episodes(entries(conversation("a")))
    first, second = contract(), contract(window_hours=1)
    assert judge_episode(first, episode).final_at - judge_episode(second, episode).final_at == (
        timedelta(hours=71)
    )
    assert msgspec.structs.replace(first) == first
