"""Re-checks on statistics logged by training runs (history.jsonl, docs/run-outputs.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ghuda.harmonize import make
from ghuda.theory import logged, weighted
from ghuda.theory.pairwise import SearchBudget
from ghuda.theory.suite import Settings, run_checks

TINY = Settings(pairs=60, aligned=20, descent_cases=20, nets=2,
                search=SearchBudget(1, 2, 4),
                descent_search=(1, 3), nets_search=(1, 3), logged_cap=50, grid=(6, 5), workers=1,
                quick=True)


def write_run(folder: Path, name: str, options: dict, steps: int = 12, seed: int = 0) -> Path:
    """A run folder whose history holds the shipped harmonizer's own backward statistics."""
    folder.mkdir(parents=True)
    harmonizer = make(name, **options)
    lines = []
    for step in range(steps):
        net = weighted.small_net(seed * 100 + step)
        stats = harmonizer.backward(*net.losses(), net.params)
        pair = {"first": "transfer", "second": "cls", **stats}
        lines.append(json.dumps({"kind": "train", "step": step, "pairs": [pair]}))
        lines.append(json.dumps({"kind": "eval", "step": step, "target_acc": 50.0}))
    (folder / "history.jsonl").write_text("\n".join(lines) + "\n")
    run = {"harmonizer": name, "harmonizer_options": options}
    (folder / "metrics.json").write_text(json.dumps({"schema": 1, "run": run}))
    return folder


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    write_run(root / "a" / "gh" / "seed0", "gh", {})
    write_run(root / "a" / "ghpp" / "seed0", "ghpp", {"t": 0.25}, seed=1)
    write_run(root / "b" / "ghpp_exact" / "seed0", "ghpp_exact", {}, seed=2)
    return root


def test_loads_every_logged_pair(results):
    runs = logged.find_runs([results])
    assert len(runs) == 3
    data = logged.load(runs)
    assert len(data) == 36
    assert {h[0] for h in data.harmonizer} == {"gh", "ghpp", "ghpp_exact"}


def test_logged_weights_match_their_formulas(results):
    data = logged.load(logged.find_runs([results]))
    result = logged.weights_part(data, str(results))
    assert result.verdict == "holds"
    assert result.cases == int(np.sum(np.isfinite(data.arrays()["w1"])))


def test_tampered_weights_are_flagged(results):
    path = results / "a" / "gh" / "seed0" / "history.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[0]["pairs"][0]["w1"] += 0.01
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    result = logged.weights_part(logged.load(logged.find_runs([results])), str(results))
    assert result.verdict == "fails"
    assert result.violating == 1
    assert "a/gh/seed0" in result.note


def test_wrong_options_in_metrics_are_flagged(results):
    metrics = results / "a" / "ghpp" / "seed0" / "metrics.json"
    metrics.write_text(json.dumps({"run": {"harmonizer": "ghpp", "harmonizer_options": {}}}))
    result = logged.weights_part(logged.load(logged.find_runs([results])), str(results))
    assert result.verdict == "fails"  # logged with t = 0.25, checked against t = 0.5


def test_config_yaml_names_the_harmonizer_when_metrics_is_missing(results):
    run = results / "a" / "gh" / "seed0"
    (run / "metrics.json").unlink()
    (run / "config.yaml").write_text("harmonizer:\n  name: gh\n  options: {}\n")
    data = logged.load(logged.find_runs([results]))
    assert all(h is not None for h in data.harmonizer)


def test_malformed_history_names_file_and_line(results):
    path = results / "b" / "ghpp_exact" / "seed0" / "history.jsonl"
    path.write_text(path.read_text() + '{"kind": "train", "pairs": [{"cos": "x"}]}\n')
    with pytest.raises(logged.RunFormatError, match=r"history.jsonl:25: pair lacks numeric"):
        logged.load(logged.find_runs([results]))
    path.write_text('{"kind": "tr')
    with pytest.raises(logged.RunFormatError, match=r"history.jsonl:1: not valid JSON"):
        logged.load(logged.find_runs([results]))


def test_missing_directory_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        logged.find_runs([tmp_path / "nope"])


def test_suite_rechecks_properties_on_logged_pairs(results, correct):
    report = run_checks(TINY, subjects=correct, runs=[results])
    rows = [r for r in report.results if r.part == "logged runs"]
    by_key = {r.key: r for r in rows}
    assert by_key["1a"].cases > 0
    assert by_key["1a"].verdict == "holds"
    assert by_key["4a"].verdict == "holds"
    assert by_key["L"].verdict == "holds"
    assert report.logged_theta_deg.size == by_key["1a"].cases


def test_suite_says_when_no_runs_exist(tmp_path, correct):
    empty = tmp_path / "results"
    empty.mkdir()
    report = run_checks(TINY, subjects=correct, runs=[empty])
    rows = [r for r in report.results if r.part == "logged runs"]
    assert rows
    assert all(r.verdict == "not run" for r in rows)
    assert all("no run folders" in r.note for r in rows)
