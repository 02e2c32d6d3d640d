"""benchmarks/reproduce_time.py on a tiny repository whose Makefile stands in for the real
one: a row per timed clone with its three phases; a failing phase exits with its status and
writes no row."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from fakeruns import REPO

# `make venv` installs a tool into .venv/bin; the pipeline calls it by name, as the rules call
# `ghuda` (the script puts the clone's .venv/bin first on PATH)
MAKEFILE = ("venv:\n\t@mkdir -p .venv/bin && printf '#!/bin/sh\\necho ran > ran.txt\\n' > "
            ".venv/bin/tool && chmod +x .venv/bin/tool\nreproduce:\n\t@{reproduce}\n")


@pytest.fixture
def reproduce_time(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import reproduce_time as module

    yield module
    sys.modules.pop("reproduce_time", None)


def _repo(path: Path, reproduce: str) -> Path:
    path.mkdir()
    (path / "Makefile").write_text(MAKEFILE.format(reproduce=reproduce))
    for cmd in (["init", "-q"], ["add", "Makefile"],
                ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"]):
        subprocess.run(["git", *cmd], cwd=path, check=True)
    return path


def test_row_holds_each_phase_and_appends(tmp_path: Path, reproduce_time):
    repo = _repo(tmp_path / "repo", "tool")
    out = tmp_path / "times.csv"
    for work in ("work", "work2"):
        assert reproduce_time.main(["--repo", str(repo), "--no-calibration", "--workdir",
                                    str(tmp_path / work), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2
    row = rows[0]
    assert row["command"] == "make reproduce"
    clone = next((tmp_path / "work").glob("ghuda-*"))
    assert (clone / "ran.txt").exists()  # the pipeline ran the installed tool
    phases = [float(row[k]) for k in ("clone_s", "install_s", "pipeline_s")]
    assert all(p >= 0 for p in phases)
    assert float(row["total_min"]) == pytest.approx(sum(phases) / 60, abs=1e-3)
    assert row["calibration_step_ms"] == ""
    assert row["speed_vs_reference"] == ""
    table = out.with_suffix(".md").read_text().splitlines()
    measured = [line for line in table if line.startswith("| 2")]
    assert len(measured) == 2
    assert f"| {float(row['install_and_pipeline_min']):.1f} |" in measured[0]
    out.with_suffix(".md").unlink()  # --table-only writes it again from the CSV
    assert reproduce_time.main(["--table-only", "--out", str(out)]) == 0
    assert out.with_suffix(".md").read_text().splitlines() == table


def test_failing_phase_exits_with_its_status_and_writes_nothing(tmp_path: Path,
                                                                reproduce_time, capsys):
    repo = _repo(tmp_path / "repo", "exit 3")
    out = tmp_path / "times.csv"
    with pytest.raises(SystemExit) as err:
        reproduce_time.main(["--repo", str(repo), "--no-calibration", "--workdir",
                             str(tmp_path / "work"), "--out", str(out)])
    assert err.value.code == 2  # make's status when a recipe fails
    assert "make reproduce failed" in capsys.readouterr().err
    assert not out.exists()


def test_table_only_needs_the_csv(tmp_path: Path, reproduce_time):
    with pytest.raises(SystemExit, match="does not exist"):
        reproduce_time.main(["--table-only", "--out", str(tmp_path / "none.csv")])


def test_reference_is_the_committed_digit_cnn_step(reproduce_time):
    ref = reproduce_time.reference_step_ms()
    rows = [r for r in csv.DictReader(reproduce_time.REFERENCE.open())
            if r["model"] == "digit_cnn" and r["config"] == "sum"]
    assert ref == float(rows[0]["wall_median_ms"])
    assert ref > 0
