"""Episode features, the columns every rule reads: a wrong delay or a missing null here would
make the same rule bill differently on the reference judge and on the SQL engines."""

from __future__ import annotations

from datetime import timedelta

from factories import NOVEMBER, conversation, entries, last_ai_answer
from raas.core.episodes import derive_episodes
from raas.core.expressions import Type, bind, matches
from raas.core.features import FEATURES, INACTIVITY_UNBOUNDED_SECONDS, episode_features


def test_every_feature_is_present_and_of_its_type() -> None:
    first = conversation("c1", confirm=True, csat=4)
    later = conversation("c2", start=NOVEMBER + timedelta(hours=5), recontact_of="c1")
    [episode] = derive_episodes(entries(first + later))
    row = episode_features(episode)
    assert set(row) == set(FEATURES)
    resolved_at = last_ai_answer(first, "refund")
    assert row["recontact_delay"] == (NOVEMBER + timedelta(hours=5) - resolved_at).total_seconds()
    assert row["conversations"] == 2 and row["csat"] == 4 and row["confirmed"] is True
    assert row["handoff_delay"] is None and row["context_passed"] is None


def test_the_v1_rule_reads_naturally_over_the_features() -> None:
    rule = bind(
        "ai_answered and not handed_off and (confirmed or not recontact_within(72h))",
        FEATURES,
        expected=Type.BOOL,
    )
    first = conversation("c1")
    resolved_at = last_ai_answer(first, "refund")
    inside = conversation(
        "c2", start=resolved_at + timedelta(hours=72, seconds=-1), recontact_of="c1"
    )
    outside = conversation("c2", start=resolved_at + timedelta(hours=72), recontact_of="c1")
    [reopened] = derive_episodes(entries(first + inside))
    [kept] = derive_episodes(entries(first + outside))
    assert not matches(rule, episode_features(reopened))
    assert matches(rule, episode_features(kept))
    [handed] = derive_episodes(entries(conversation("c3", handoff="with")))
    assert not matches(rule, episode_features(handed))


def test_inactivity_is_the_silence_after_the_ai_answered() -> None:
    first = conversation("c1")
    resolved_at = last_ai_answer(first, "refund")
    [silent] = derive_episodes(entries(first))
    assert episode_features(silent)["inactivity"] == INACTIVITY_UNBOUNDED_SECONDS
    back = conversation("c2", start=resolved_at + timedelta(hours=10), recontact_of="c1")
    [returned] = derive_episodes(entries(first + back))
    # The recontact conversation opens, the agent records the recontact, then the customer writes.
    assert episode_features(returned)["inactivity"] == 10 * 3600 + 2 * 60
    rule = bind("inactive_for(72h)", FEATURES, expected=Type.BOOL)
    assert matches(rule, episode_features(silent))
    assert not matches(rule, episode_features(returned))
    [handed] = derive_episodes(entries(conversation("c3", handoff="with")))
    assert episode_features(handed)["inactivity"] is None
