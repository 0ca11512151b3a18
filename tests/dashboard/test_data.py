"""The vendor's figures come from one SQL scan of the episode table; the pure judge over the
same ledger is the reference. What would break: a rule classified differently in SQL, an
excluded episode counted as measured, a tier's success counted from the wrong episodes, a day
taken in UTC instead of the contract's zone."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

from dashboard_workload import build_workspace

from raas.core.episodes import Entry, derive_episodes
from raas.core.judge import Judge
from raas.dashboard.views import local_time


def test_contract_figures_equal_the_pure_judge_over_the_ledger(tmp_path: Path) -> None:
    workspace = build_workspace(tmp_path, conversations=150)
    data = workspace.data()
    item = workspace.contracts[0]
    contract = item.contract
    figures = data.contract_figures(item)

    judge = Judge(contract)
    by_day: Counter[tuple[str, str]] = Counter()
    tiers: Counter[str] = Counter()
    successes: Counter[str] = Counter()
    episodes = measured = billed = resolved = csat_total = csat_answers = 0
    model_cost = Decimal(0)
    for _customer, stored in workspace.ledger.iter_customers(contract.buyer):
        entries = [Entry(entry.event, entry.leaf_hash) for entry in stored]
        for episode in derive_episodes(entries, link_horizon=contract.window):
            outcome = judge.judge(episode)
            success = outcome.billable and not episode.handed_off
            episodes += 1
            measured += outcome.kind != "excluded"
            billed += outcome.billable
            resolved += success
            day = local_time(episode.started_at, contract.time_zone)[:10]
            by_day[day, outcome.kind] += 1
            if episode.csat is not None:
                csat_total += episode.csat
                csat_answers += 1
            model_cost += episode.model_cost
            for tier in episode.tiers:
                tiers[tier] += 1
                successes[tier] += success
    # Kept while the table is unchanged: the same figures without a second scan.
    assert data.contract_figures(item) is figures
    data.close()
    workspace.ledger.close()

    assert figures.episodes == episodes > 0
    assert (figures.measured, figures.billed, figures.resolved_by_ai) == (
        measured,
        billed,
        resolved,
    )
    assert {(count.day, count.outcome): count.episodes for count in figures.by_day} == by_day
    assert figures.csat_answers == csat_answers
    assert figures.csat_mean == Decimal(csat_total) / csat_answers
    assert figures.model_cost == model_cost
    assert {tier.tier: (tier.episodes, tier.successes) for tier in figures.tiers} == {
        tier: (tiers[tier], successes[tier]) for tier in tiers
    }
