"""benchmarks/gpu_check.py runs every section on the CPU (``--quick``), and its CSV is what
the compute budget reads (issue 13)."""

from __future__ import annotations

import csv
import importlib
import subprocess
import sys
from pathlib import Path

from ghuda.report import budget

REPO_ROOT = Path(__file__).resolve().parents[1]

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.py"


def test_quick_cpu_run_writes_every_section(tmp_path, digits_mini_root, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    step_configs = list(importlib.import_module("benchlib.gpu.step").configs())
    assert step_configs[:2] == ["plain", "floor"]
    assert step_configs[-1] == "three_pass"
    out = tmp_path / "gpu_check.csv"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--threads", "1",
         "--data-root", str(digits_mini_root), "--out", str(out)],
        capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    steps = [(r["name"], r["precision"]) for r in rows if r["section"] == "step"]
    assert steps == [(c, p) for p in ("fp32", "bf16+channels_last") for c in step_configs]
    assert all(float(r["ms_per_step"]) > 0 for r in rows)
    digits = {r["name"]: r for r in rows if r["section"] == "digits"}
    assert set(digits) == {"source_only+sum", "dann+gh"}
    assert all(r["status"] == "completed" for r in digits.values())
    backbone = {(r["dataset"], r["backbone"]) for r in rows if r["section"] == "backbone"
                and r["status"] == "completed"}
    assert backbone == {("office31", "tiny_vit"), ("digits", "lenet")}
    loader = {r["name"]: r for r in rows if r["section"] == "loader"}
    assert set(loader) == {"cdan+data", "cdan+decoded", "cdan+cached"}
    assert float(loader["cdan+cached"]["vs_plain"]) == 1.0
    determinism = {r["name"]: r["status"] for r in rows if r["section"] == "determinism"}
    # on the CPU every run is deterministic, with or without the flag
    assert determinism == {"dann+gh deterministic=false": "identical",
                           "dann+gh deterministic=true": "identical"}
    assert all(r["device"].startswith("cpu") for r in rows)
    measured, source = budget.measured_steps(out)
    assert set(measured) == backbone
    assert str(out) in source
    assert f"wrote {out}" in done.stdout
