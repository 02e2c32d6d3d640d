"""The selection table (issue 27) on a synthetic summary whose cells follow by hand.

DANN on the fixture config's two tasks, seeds 0-2, baseline and +GH. Per run, `last` is
60 + seed (+GH adds 1 + 0.5 seed), `oracle` 3 points more, `source_val` 0.5 more and every
validator's protocol 1 more: its gap to oracle is -2.0 on every run, and +GH's Δ is 1.5
under every protocol (as in the golden tables). Each run has four evaluations with target
accuracies 50, 60, 70, 65; every validator's score tracks them exactly in its direction (ρ =
1) and source-validation accuracies 1, 2, 3, 4 rank them 1, 2, 3, 4 against 1, 2, 4, 3:
ρ = 1 - 6·2 / (4·15) = 0.8.
"""

from __future__ import annotations

import pandas as pd
import pytest

from ghuda.engine.validators import SCORE_PREFIX, VALIDATORS
from ghuda.report.selection import selection_table

TARGET = [50.0, 60.0, 70.0, 65.0]
SOURCE_VAL = [1.0, 2.0, 3.0, 4.0]
BUMP = {"last": 0.0, "source_val": 0.5, "oracle": 3.0}


def _summary(drop_validators: bool = False) -> dict[str, pd.DataFrame]:
    runs, evals = [], []
    for task in ("a->b", "b->a"):
        for seed in (0, 1, 2):
            for variant in ("sum", "gh"):
                key = {"dataset": "toy", "task": task, "method": "dann", "variant": variant,
                       "seed": seed}
                last = 60.0 + seed + (1.0 + 0.5 * seed if variant == "gh" else 0.0)
                row = {**key, "status": "completed", "collapsed": False}
                for proto in [*BUMP, *VALIDATORS.names()]:
                    if proto in VALIDATORS.names() and drop_validators:
                        continue
                    row[f"acc_{proto}"] = last + BUMP.get(proto, 1.0)
                runs.append(row)
                for i, (acc, src) in enumerate(zip(TARGET, SOURCE_VAL, strict=True)):
                    rec = {**key, "step": 10 * (i + 1), "target_acc": acc,
                           "source_val_acc": src}
                    if not drop_validators:
                        rec.update({f"{SCORE_PREFIX}{n}": acc if VALIDATORS.get(n)
                                    .higher_is_better else -acc for n in VALIDATORS.names()})
                    evals.append(rec)
    return {"runs": pd.DataFrame(runs), "eval": pd.DataFrame(evals),
            "train": pd.DataFrame()}


def _rows(table) -> dict[tuple[str, str], list[str]]:
    cols = table.columns
    return {(r[cols.index("Variant")], r[cols.index("Protocol")]): r for r in table.rows}


def test_selection_table_by_hand(fx_config):
    table = selection_table(fx_config, _summary())
    cols, rows = table.columns, _rows(table)
    protocols = ["last", "source_val", "oracle (target labels)", *VALIDATORS.names()]
    assert [r[cols.index("Protocol")] for r in table.rows] == protocols * 2
    for name in VALIDATORS.names():
        base, gh = rows[("baseline", name)], rows[("+GH", name)]
        assert base[cols.index("Avg")] == "62.0"  # 61 + 1
        assert base[cols.index("n")] == "6"
        assert base[cols.index("− oracle")] == "−2.0"
        assert base[cols.index("ρ (Spearman)")] == "1.00"
        assert base[cols.index("runs (ρ)")] == "6"
        assert base[cols.index("Δ Avg [CI]")] == "—"
        assert gh[cols.index("Δ Avg [CI]")] == "+1.5 [+0.9, +2.1]"
        assert gh[cols.index("pairs")] == "6"
    assert rows[("baseline", "source_val")][cols.index("ρ (Spearman)")] == "0.80"
    assert rows[("baseline", "last")][cols.index("ρ (Spearman)")] == "—"
    assert rows[("baseline", "oracle (target labels)")][cols.index("− oracle")] == "+0.0"
    assert any("TARGET LABELS" in note for note in table.notes)
    assert any("no target labels" in note for note in table.notes)


def test_runs_recorded_before_the_validators_get_no_validator_rows(fx_config):
    """A config whose runs predate the validators (the regime ladder) shows the three
    protocols it has and a note naming the validators no run recorded."""
    table = selection_table(fx_config, _summary(drop_validators=True))
    cols, rows = table.columns, _rows(table)
    assert {proto for _, proto in rows} == {"last", "source_val", "oracle (target labels)"}
    assert rows[("baseline", "last")][cols.index("Avg")] == "61.0"
    assert any(note.startswith("Not recorded by any run of this config: "
                               + ", ".join(VALIDATORS.names())) for note in table.notes)


@pytest.mark.parametrize("score", [[1.0, 1.0, 1.0, 1.0], [1.0, 2.0]])
def test_no_rank_correlation_from_a_constant_score_or_too_few_evaluations(fx_config, score):
    summary = _summary()
    ev = summary["eval"]
    ev = ev[ev["step"] <= 10 * len(score)].copy()
    ev["source_val_acc"] = score * (len(ev) // len(score))
    summary["eval"] = ev
    table = selection_table(fx_config, summary)
    cols, rows = table.columns, _rows(table)
    assert rows[("baseline", "source_val")][cols.index("ρ (Spearman)")] == "—"
    assert rows[("baseline", "source_val")][cols.index("runs (ρ)")] == "0"


def test_a_diverged_run_is_left_out_of_every_protocol(fx_config):
    summary = _summary()
    runs = summary["runs"]
    gone = (runs["task"] == "a->b") & (runs["seed"] == 0) & (runs["variant"] == "gh")
    for col in [c for c in runs if c.startswith("acc_")]:
        runs.loc[gone, col] = float("nan")
    runs.loc[gone, "status"] = "diverged"
    table = selection_table(fx_config, summary)
    cols, rows = table.columns, _rows(table)
    for name in ["last", *VALIDATORS.names()]:
        assert rows[("+GH", name)][cols.index("n")] == "5", name
        assert rows[("+GH", name)][cols.index("pairs")] == "5", name
