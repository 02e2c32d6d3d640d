"""The regime ladder (issue 22): rungs as datasets entries, the ladder table, w1 summary."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fakeruns import default_acc, tiny_config, write_runs

from ghuda.pipeline.config import validate_schema
from ghuda.pipeline.grid import Run, expand_runs, registered_dataset, run_config_for
from ghuda.report.ladder import ladder_table, w1_summary
from ghuda.report.outputs import figure_names, table_stems


def ladder_config(results_dir: Path) -> dict[str, Any]:
    """Two rungs on the toy dataset (one task), DANN and CDAN+E x sum / GH / GH++ x 3 seeds."""
    config = tiny_config(results_dir)
    toy = {k: v for k, v in config["datasets"]["toy"].items() if k != "tasks"}
    config["datasets"] = {
        "r0": {**toy, "dataset": "toy", "label": "0 today", "description": "as today",
               "tasks": ["a->b"]},
        "r1": {**toy, "dataset": "toy", "label": "1 pretrained", "description": "pretrained",
               "tasks": ["a->b"]},
    }
    config["grid"] = [{"name": "ladder", "methods": ["dann", "cdan"],
                       "variants": ["sum", "gh", "ghpp"], "seeds": [0, 1, 2]}]
    config["tables"] = {"rows": ["sum", "gh", "ghpp"],
                        "ladder": {"mechanism_steps": 20, "compare_step": 20}}
    return validate_schema(config)


def collapse_on_rung1(run: Run, protocol: str) -> float:
    """GH at chance on rung r1 (10 % + 0.1 per seed, every protocol), else the fixture's."""
    if run.dataset == "r1" and run.variant == "gh":
        return 10.0 + 0.1 * run.seed
    return default_acc(run, protocol)


def test_a_rung_names_its_registered_dataset_and_keeps_its_own_folder(tmp_path):
    config = ladder_config(tmp_path)
    assert registered_dataset(config, "r1") == "toy"
    run = next(r for r in expand_runs(config) if r.dataset == "r1")
    assert run.rel_dir.startswith("r1/a__b/")
    cfg = run_config_for(config, "r1", "a->b", run.method, run.variant, run.seed)
    assert cfg["dataset"]["name"] == "toy"
    assert len(expand_runs(config)) == 2 * 2 * 3 * 3


def test_ladder_outputs_are_declared_only_for_a_ladder_config(tmp_path):
    config = ladder_config(tmp_path)
    assert "ladder" in table_stems(config)
    assert "ladder_mechanism" in figure_names(config)
    plain = tiny_config(tmp_path)
    assert "ladder" not in table_stems(plain)
    assert "ladder_mechanism" not in figure_names(plain)


def test_w1_summary_by_hand():
    w1 = {0: [1.0, 12.0, 3.0, 1.0], 1: [1.0, 1.0, 1.0, 1.0], 2: [50.0, 1.0, 1.0, 11.0]}
    frame = pd.DataFrame([{"seed": s, "step": i + 1, "w1": v}
                          for s, values in w1.items() for i, v in enumerate(values)])
    peak, onset, hits = w1_summary(frame)
    assert peak == 12.0  # median of 12, 1, 50
    assert onset == 1.5  # first steps 2 (seed 0) and 1 (seed 2)
    assert hits == 2
    # fewer than half the runs blow up (1 of 3): no onset
    calm = frame[frame["seed"] == 1].assign(seed=3)
    peak, onset, hits = w1_summary(pd.concat([frame[frame["seed"] != 2], calm]))
    assert math.isnan(onset)
    assert hits == 1
    assert w1_summary(frame.iloc[:0])[2] == 0


@pytest.fixture
def ladder_summary(tmp_path):
    from ghuda.report.aggregate import aggregate, load_summary

    config = ladder_config(tmp_path / "results")
    write_runs(config, collapse_on_rung1)
    aggregate(config, tmp_path / "summary")
    return config, load_summary(tmp_path / "summary")


def test_ladder_table_gives_every_protocol_and_counts_the_collapse(ladder_summary):
    config, summary = ladder_summary
    table = ladder_table(config, summary)
    assert len(table.rows) == 2 * 2 * 3
    rows = {(r[0], r[1], r[2]): dict(zip(table.columns, r, strict=True)) for r in table.rows}
    gh = rows[("1 pretrained (a→b)", "DANN", "+GH")]
    # by hand: GH 10.0 / 10.1 / 10.2 against DANN 59 / 60 / 61.5 (+0.5 source_val, +3 oracle)
    assert gh["last"] == "10.1 ± 0.1"
    assert gh["Δ last [CI]"].startswith("−50.1 [")
    assert gh["Δ source_val [CI]"].startswith("−50.6 [")
    assert gh["Δ oracle [CI] (target labels)"].startswith("−53.1 [")
    assert (gh["n"], gh["div."], gh["coll."]) == ("3", "0/3", "3/3")
    # the fixture's eval at step 20 of 40 steps: final accuracy - 2
    assert gh["acc. at step 20"] == "8.1 ± 0.1"
    base = rows[("0 today (a→b)", "DANN", "baseline")]
    assert base["Δ last [CI]"] == "—"
    assert base["coll."] == "0/3"
    # +GH on rung 0: the fixture's +1 x (1 + 0.5 seed) -> 1, 1.5, 2
    assert rows[("0 today (a→b)", "DANN", "+GH")]["Δ last [CI]"].startswith("+1.5 [")
    # the plain sum's w1 is 1; GH's max w1 is read from the history
    assert base["max w1 (≤ 20 steps)"] == "1.0"
    assert float(gh["max w1 (≤ 20 steps)"]) >= 1.0
    assert any("pretrained" in note for note in table.notes)


def test_regime_table_reads_every_rung_from_its_run_configs():
    """configs/ladder.yaml: each rung moves its factor; values come from the run configs."""
    from ghuda.pipeline.config import load_config
    from ghuda.report.fidelity import fidelity_markdown
    from ghuda.report.ladder import regime_fidelity_table

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "ladder.yaml")
    table = regime_fidelity_table(config)
    rungs = list(config["datasets"])
    assert len(table.columns) == len(rungs) + 3
    rows = {r[0]: dict(zip(rungs, r[2:2 + len(rungs)], strict=True)) for r in table.rows}
    scratch = [r for r in rungs
               if config["datasets"][r]["run"]["model"]["backbone"] == "digit_cnn"]
    assert scratch == ["rung0", "rung0b"]  # the rungs below the pretrained ones
    for rung in rungs:
        pretrained = rung not in scratch
        assert rows["backbone"][rung] == ("**efficientnet_lite0**" if pretrained
                                          else "**digit_cnn**")
        assert rows["ImageNet-pretrained"][rung] == ("true" if pretrained else "**false**")
    # one factor per rung: 0b moves the learning rate, 2 the reversal horizon
    assert rows["base learning rate"] == {"rung0": "**0.01**", **{
        r: "0.001" for r in rungs[1:]}}
    assert [rows["reversal schedule horizon (iterations)"][r] for r in rungs] == [
        "**the run's steps**"] * 3 + ["10000"] * 2
    assert rows["frozen backbone stages"]["rung0"] == "0 (all trained)"
    assert "mnist→optdigits" in table.columns[2 + rungs.index("rung3")]
    assert "Regime ladder" in fidelity_markdown(
        load_config(Path(__file__).resolve().parents[2] / "configs" / "paper.yaml"), config)


def test_a_rung_without_runs_is_named_not_hidden(tmp_path):
    from ghuda.report.aggregate import aggregate, load_summary

    config = ladder_config(tmp_path / "results")
    config["grid"][0]["datasets"] = ["r0"]
    write_runs(config)
    aggregate(config, tmp_path / "summary")
    summary = load_summary(tmp_path / "summary")
    table = ladder_table(config, summary)
    assert {row[0] for row in table.rows} == {"0 today (a→b)"}
    assert any(note.startswith("Not trained yet") and "1 pretrained (a→b)" in note
               for note in table.notes)


def test_published_numbers_are_looked_up_by_the_registered_dataset(tmp_path):
    """A rung named r1 that trains digits-mini reads digits-mini's reported entry (no
    published numbers), not an entry named r1 (which would claim 'not recorded')."""
    from ghuda.report.aggregate import aggregate, load_summary
    from ghuda.report.reported import load_reported
    from ghuda.report.tables import dataset_table

    config = ladder_config(tmp_path / "results")
    config["datasets"]["r1"]["dataset"] = "digits_mini"
    write_runs(config)
    aggregate(config, tmp_path / "summary")
    runs = load_summary(tmp_path / "summary")["runs"]
    table = dataset_table(config, runs, "r1", load_reported(config["reported"]))
    assert not any("rep." in cell for row in table.rows for cell in row)
    assert any("digits-mini is built by this project" in note for note in table.notes)
