"""`ghuda theory`: writes the table and the figure atomically; bad input exits 2."""

from __future__ import annotations

import dataclasses
import json

import pytest
from test_logged import TINY

from ghuda import cli
from ghuda.theory import suite
from ghuda.theory.result import CheckResult
from ghuda.theory.suite import TheoryReport
from ghuda.theory.table import render


@pytest.fixture
def tiny(monkeypatch):
    """--quick gives tiny sizes, with the searches in a spawned second process."""
    parallel = dataclasses.replace(TINY, workers=2)
    monkeypatch.setattr(suite.Settings, "quick_mode", classmethod(lambda cls, seed=0: parallel))


def test_writes_table_and_figure(tmp_path, tiny, capsys):
    """Pipeline-style --results/--tables with an explicit --out-figure stem; the table is the
    same as a single-process run's (the second process changes nothing)."""
    results = tmp_path / "results"
    results.mkdir()
    stem = tmp_path / "f" / "theory_violations"
    assert cli.main(["theory", "--quick", "--results", str(results), "--tables",
                     str(tmp_path / "t"), "--out-figure", str(stem)]) == 0
    text = (tmp_path / "t" / "theory.md").read_text()
    for key in ("1a", "1d", "2a", "2b", "3", "4a", "4e", "5a", "5b", "5c", "L"):
        assert f"| {key} |" in text
    assert f"no run folders (history.jsonl) under {results}" in text
    assert text == render(suite.run_checks(TINY, runs=[results]), str(stem))
    assert (tmp_path / "f" / "theory_violations.png").stat().st_size > 1000
    assert (tmp_path / "f" / "theory_violations.pdf").stat().st_size > 1000
    leftovers = [p.name for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert leftovers == []
    assert "unexpected failures: none" in capsys.readouterr().out
    assert "issue" not in text
    assert "REFERENCE" not in text


def test_unexpected_failure_exits_1(tmp_path, monkeypatch, capsys):
    """A property outside docs/theory.md's list that fails makes the command exit 1; the
    documented ones (5a here) do not."""
    report = TheoryReport(settings=suite.Settings(), results=[_result("1a", 2), _result("5a", 3)])
    monkeypatch.setattr(suite, "run_checks", lambda *a, **k: report)
    table = tmp_path / "theory.md"
    assert cli.main(["theory", "--quick", "--out-table", str(table)]) == 1
    captured = capsys.readouterr()
    assert "expected to fail (docs/theory.md): 5a; unexpected failures: 1a" in captured.out
    assert "properties 1a fail and are not documented to fail" in captured.err
    assert "**fails** (UNEXPECTED)" in table.read_text()
    report.results = [_result("1a", 0), _result("5a", 3)]
    assert cli.main(["theory", "--quick", "--out-table", str(table)]) == 0


def test_missing_runs_directory_exits_2_and_writes_nothing(tmp_path, capsys):
    table = tmp_path / "theory.md"
    assert cli.main(["theory", "--runs", str(tmp_path / "nope"), "--out-table",
                     str(table)]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert not table.exists()


def test_malformed_history_exits_2(tmp_path, tiny, capsys):
    run = tmp_path / "r" / "seed0"
    run.mkdir(parents=True)
    (run / "history.jsonl").write_text("{oops\n")
    (run / "metrics.json").write_text(json.dumps({"run": {"harmonizer": "gh"}}))
    table = tmp_path / "theory.md"
    assert cli.main(["theory", "--quick", "--runs", str(tmp_path), "--out-table",
                     str(table)]) == 2
    assert "history.jsonl:1: not valid JSON" in capsys.readouterr().err
    assert not table.exists()


def _result(key: str, violating: int, cases: int = 10, note: str = "") -> CheckResult:
    return CheckResult(key=key, statement=f"property {key}", part="random", subject="h",
                       unit="rel", tolerance="1e-09", cases=cases, violating=violating,
                       max_violation=0.5 if violating else 0.0, worst="θ=170°", note=note)


def test_table_reports_failing_and_not_run_properties():
    report = TheoryReport(settings=suite.Settings(),
                          results=[_result("1a", 0), _result("5a", 3),
                                   _result("4a", 0, cases=0, note="no runs here")])
    text = render(report, "figures/x")
    assert "| 5a | property 5a | h | 10 | 0.5 rel | 30% | **fails** (expected) |" in text
    assert "### 5a property 5a — h" in text
    assert "Fails on 3 of 10 cases" in text
    assert "Expected: the released weights depend on the angle only" in text
    assert "not run" in text
    assert "no runs here" in text
    assert "| 1a | property 1a | h | 10 | 0 rel | 0 | holds |" in text

