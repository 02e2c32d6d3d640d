"""The seed rule (ghuda.report.seedrule): its clauses, the projected interval against the
interval `stats.paired` computes, the seeds it asks for, and its table on the fixture runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ghuda.report import seedrule
from ghuda.report.seedrule import (
    BY_MARGIN,
    UNRESOLVED,
    WITHIN,
    Spread,
    resolution,
    resolves,
    seed_rule_table,
    seeds_needed,
)
from ghuda.report.stats import Paired, paired, projected_half_width


def test_clauses_of_the_rule():
    assert resolves(-0.3, 2.0) == WITHIN
    assert resolves(-0.3, 2.01) is None
    assert resolves(-15.0, 5.0) == BY_MARGIN
    assert resolves(14.9, 5.0) is None
    assert resolves(30.0, math.nan) is None
    assert resolution(Paired(6, 1.0, -4.0, 6.0, 0.5, 0.5)) == UNRESOLVED
    assert resolution(Paired(60, -35.0, -40.0, -30.0, 0.0, 0.0)) == BY_MARGIN
    assert resolution(Paired(2, 1.0, math.nan, math.nan, math.nan, math.nan)) == UNRESOLVED
    # two pairs have an interval, but the tables show none from fewer than three
    assert resolution(Paired(2, -64.6, -158.3, 29.1, 0.5, 0.5)) == UNRESOLVED
    assert resolution(Paired(2, -64.6, -65.0, -64.2, 0.5, 0.5)) == UNRESOLVED


@pytest.mark.parametrize("seeds", [3, 7, 20])
def test_projection_equals_the_interval_paired_gives(seeds):
    """With the spreads a sample has, the projection is that sample's own interval (one task:
    the paired t interval; three tasks: the stratified Welch interval)."""
    rng = np.random.default_rng(seeds)
    d = rng.normal(1.0, 3.0, size=(3, seeds)) * np.array([[1.0], [2.0], [0.5]])
    one = paired(d[0], np.zeros(seeds))
    assert projected_half_width([d[0].std(ddof=1)], [1.0], seeds) == pytest.approx(
        (one.ci_high - one.ci_low) / 2)
    strata = [t for t in range(3) for _ in range(seeds)]
    three = paired(d.ravel(), np.zeros(d.size), strata=strata)
    assert projected_half_width(d.std(axis=1, ddof=1), [1.0] * 3, seeds) == pytest.approx(
        (three.ci_high - three.ci_low) / 2)


def test_incomplete_pairs_widen_the_projection():
    full = projected_half_width([5.0, 5.0], [1.0, 1.0], 10)
    assert projected_half_width([5.0, 5.0], [0.5, 1.0], 10) > full
    assert math.isnan(projected_half_width([5.0], [0.1], 10))  # one complete pair


def test_seeds_needed_is_the_smallest_resolved_count():
    measured = Spread((6.0, 6.0, 6.0), (1.0, 1.0, 1.0))
    n = seeds_needed(measured, delta=-0.4)
    assert n is not None
    assert n > seedrule.MIN_SEEDS
    assert projected_half_width(measured.sds, measured.completion, n) <= seedrule.TOLERANCE
    assert projected_half_width(measured.sds, measured.completion, n - 1) > seedrule.TOLERANCE
    # a large effect is resolved by margin with fewer seeds than the ±2 clause needs
    bimodal = Spread((5.3, 3.5, 14.2), (1.0, 1.0, 1.0))
    assert seeds_needed(bimodal, delta=-35.0) == seedrule.MIN_SEEDS
    assert seeds_needed(bimodal, delta=0.0) > seedrule.MIN_SEEDS
    # no seed count up to the cap resolves a noisy null effect
    assert seeds_needed(Spread((40.0,), (1.0,)), delta=0.0) is None


def _row(table, method: str, variant: str) -> list[str]:
    found = [r for r in table.rows if r[1] == method and r[2] == variant]
    assert len(found) == 1, (method, variant, table.rows)
    return found[0]


def test_table_on_the_fixture_runs(fx_summary):
    """DANN + GH on the fixture: 3 pairs per task, each task's differences 1, 1.5, 2 (sd 0.5):
    interval [+0.9, +2.1] (tests/report/test_tables_golden.py), half-width ≤ 2; the rule asks for
    its minimum. +GH++ adds exactly 2: a collapsed interval, half-width ≤ 2."""
    config, summary = fx_summary
    table = seed_rule_table(config, summary)
    gh = _row(table, "DANN", "+GH")
    assert gh[3:] == ["3", "6", "+1.5 [+0.9, +2.1]", "0.6", WITHIN,
                      str(seedrule.MIN_SEEDS)]
    assert _row(table, "DANN", "+GH++")[7] == WITHIN
    assert _row(table, "DANN", "baseline")[8].startswith(str(seedrule.MIN_SEEDS))


def test_a_changed_cell_changes_the_verdict(fx_summary):
    """Spread the +GH runs of one task: the interval widens past ±2 and the Δ is unresolved,
    and the rule asks for more seeds."""
    config, summary = fx_summary
    runs = summary["runs"]
    rows = (runs["method"] == "dann") & (runs["variant"] == "gh") & (runs["task"] == "a->b")
    runs.loc[rows, "acc_last"] += np.array([-6.0, 0.0, 6.0])[: int(rows.sum())]
    gh = _row(seed_rule_table(config, summary), "DANN", "+GH")
    assert gh[7] == UNRESOLVED
    assert gh[8] == f"> {seedrule.CAP}" or int(gh[8]) > seedrule.MIN_SEEDS
