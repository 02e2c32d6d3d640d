"""Compute budget: FLOP counts, the per-job formula, the written table, and the measured
backbone pass times it reads (it times nothing itself)."""

from __future__ import annotations

import copy
import importlib.util
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ghuda.config import resolve
from ghuda.pipeline.config import load_config
from ghuda.pipeline.grid import expand_runs
from ghuda.report import budget

REPO = Path(__file__).resolve().parents[2]


def _script(name: str):
    """A script of benchmarks/ as a module (its library `benchlib` beside it importable)."""
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def _pass_csv(tmp_path, **ms: float) -> Path:
    """A CSV in benchmarks/backbone_pass.py's format with the fixture's settings (batch 8,
    32 px, 1 thread): 5 ms per pass unless `ms` says otherwise."""
    bp = _script("backbone_pass")
    ms = {"digit_cnn": 5.0, "tiny_vit": 5.0, **ms}
    results = [{"cpu_ms_median": v, "cpu_ms_q1": v, "cpu_ms_q3": v, "wall_ms_median": v,
                "repeats": 1} for v in ms.values()]
    path = tmp_path / "passes.csv"
    bp.write_csv(path, [bp.Setting(name, 8, 32, 1) for name in ms], results,
                 {"machine": "Test CPU", "torch": "9.9", "git": "abc", "load_avg_1m": "0",
                  "date": "today"})
    return path


def _passes(tmp_path, **ms: float) -> budget.PassTimes:
    return budget.PassTimes.read(_pass_csv(tmp_path, **ms))


def test_resnet50_flops_match_the_textbook_count():
    fwd, total = budget.backbone_flops("resnet50", 1, 224)
    assert fwd == pytest.approx(8.18e9, rel=0.02)  # 4.09 GMACs per 224px image
    assert 2.5 < total / fwd < 3.1  # backward costs about twice the forward
    fwd4, _ = budget.backbone_flops("resnet50", 4, 224)
    assert fwd4 == pytest.approx(4 * fwd)


def _target(fx_config, tmp_path):
    target = copy.deepcopy(fx_config)
    target["name"] = "paperish"
    target["datasets"]["toy"].update(image_size=32, domain_images={"a": 1000, "b": 500})
    target["run_defaults"]["train"] = {"steps": 1000, "batch_size": 8, "eval_every": 250}
    target["budget"] = {"gpu": "test GPU", "sustained_tflops": 2.0, "basis": "made up"}
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(target), encoding="utf-8")
    return path


def test_job_estimate_follows_the_stated_formula(fx_summary, tmp_path):
    config, summary = fx_summary
    jobs, ratios, target = budget.estimate(config, summary["runs"],
                                           str(_target(config, tmp_path)), _passes(tmp_path))
    assert len(jobs) == len(expand_runs(target))
    r = ratios.set_index(["method", "variant"]).loc[("cdan", "gh"), "R"]
    assert r == pytest.approx(18.0 / 5.0)  # fixture step 18 ms / 5 ms per backbone pass
    fwd1, _ = budget.backbone_flops("digit_cnn", 1, 32)
    _, fb = budget.backbone_flops("digit_cnn", 8, 32)
    job = jobs[(jobs.method == "cdan") & (jobs.variant == "gh") & (jobs.task == "a->b")].iloc[0]
    flops = 1000 * r * fb + 4 * (500 + 0.1 * 1000) * fwd1  # 4 evals of target b + source val
    assert job["gpu_hours"] == pytest.approx(flops / 2e12 / 3600)


def test_missing_measurement_and_missing_budget_are_errors(fx_summary, tmp_path):
    config, summary = fx_summary
    path = _target(config, tmp_path)
    runs, passes = summary["runs"], _passes(tmp_path)
    with pytest.raises(ValueError, match=r"no step-cost measurement.*\('cdan', 'gh'\)"):
        budget.estimate(config, runs[~((runs.method == "cdan") & (runs.variant == "gh"))],
                        str(path), passes)
    data = yaml.safe_load(path.read_text())
    del data["budget"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="no 'budget' section"):
        budget.estimate(config, runs, str(path), passes)


def test_written_budget_states_method_and_totals(fx_summary, tmp_path):
    config, summary = fx_summary
    hours = budget.write_budget(config, summary["runs"], str(_target(config, tmp_path)),
                                tmp_path / "b.md", tmp_path / "b.csv",
                                pass_csv=_pass_csv(tmp_path))
    text = (tmp_path / "b.md").read_text()
    assert "**estimate**" in text
    assert "torch.utils.flop_counter" in text
    assert "test GPU, sustained 2.0 TFLOP/s, at least 0 ms per backbone pass: made up" in text
    assert f"{hours:,.1f}" in text
    assert len((tmp_path / "b.csv").read_text().splitlines()) == 1 + 39


def test_step_cpu_time_uses_cpu_not_wall_and_falls_back():
    import pandas as pd

    frame = pd.DataFrame({"cpu_s": [4.0, None], "train_s": [8.0, 8.0], "wall_s": [10.0, 10.0],
                          "steps": [40, 40], "step_ms_median": [300.0, 300.0]})
    # 4 s of CPU, 80% of the loop spent in training steps, 40 steps -> 80 ms per step
    assert budget.step_cpu_ms(frame).tolist() == [80.0, 300.0]


def test_pass_floor_bounds_small_models(fx_summary, tmp_path):
    config, summary = fx_summary
    path = _target(config, tmp_path)
    data = yaml.safe_load(path.read_text())
    data["budget"]["pass_floor_ms"] = 10.0
    data["datasets"]["toy"]["domain_images"] = {}
    path.write_text(yaml.safe_dump(data))
    jobs, _, _ = budget.estimate(config, summary["runs"], str(path), _passes(tmp_path))
    job = jobs[(jobs.method == "cdan") & (jobs.variant == "gh") & (jobs.task == "a->b")].iloc[0]
    # the digit CNN's FLOPs take far less than 10 ms: the floor decides, 1000 steps x R x 10 ms
    assert job["gpu_hours"] == pytest.approx(1000 * (18.0 / 5.0) * 0.010 / 3600)


def test_source_only_steps_are_the_unit_when_present(fx_summary, tmp_path):
    config, summary = fx_summary
    runs = summary["runs"]
    ref = runs[runs.method == "dann"].assign(method="source_only")
    ratios = budget.measured_ratios(config, pd.concat([runs, ref], ignore_index=True),
                                    _passes(tmp_path, tiny_vit=20.0))
    r = ratios.set_index(["method", "variant"])
    # source-only steps (fixture: the DANN ones, 10 ms baseline) are the unit, not the 5 ms pass
    assert r.loc[("source_only", "sum"), "R"] == pytest.approx(1.0)
    assert r.loc[("cdan", "gh"), "R"] == pytest.approx(18.0 / 10.0)


def _gpu_csv(tmp_path, ms: float, batch: int):
    """A CSV in benchmarks/gpu_check.py's format with one measured toy/digit_cnn step."""
    gpu_check = _script("gpu_check")
    rows = [gpu_check.Row("backbone", "source_only", dataset="toy", backbone="digit_cnn",
                          batch=batch, steps=20, ms_per_step=ms, status="completed"),
            gpu_check.Row("step", "gh", "fp32", ms_per_step=99.0)]
    path = tmp_path / "gpu_check_cuda.csv"
    gpu_check.write_csv(rows, path, {"device": "cuda:0 (Test GPU)", "date": "today"})
    return path


def test_measured_gpu_steps_replace_the_assumed_throughput(fx_summary, tmp_path):
    config, summary = fx_summary
    target = str(_target(config, tmp_path))
    csv_path = _gpu_csv(tmp_path, ms=4.0, batch=16)
    measured, source = budget.measured_steps(csv_path)
    assert measured == {("toy", "digit_cnn"): (4.0, 16)}
    assert "cuda:0 (Test GPU)" in source
    jobs, ratios, _ = budget.estimate(config, summary["runs"], target, _passes(tmp_path),
                                      measured)
    r = ratios.set_index(["method", "variant"]).loc[("cdan", "gh"), "R"]
    job = jobs[(jobs.method == "cdan") & (jobs.variant == "gh") & (jobs.task == "a->b")].iloc[0]
    fwd1, _ = budget.backbone_flops("digit_cnn", 1, 32)
    train_s = 1000 * r * 4.0e-3 * 8 / 16  # steps * R * measured step * batch ratio
    eval_s = 4 * (500 + 0.1 * 1000) * fwd1 / 2e12
    assert job["gpu_hours"] == pytest.approx((train_s + eval_s) / 3600)
    assert set(jobs["step_source"]) == {"measured"}
    budget.write_budget(config, summary["runs"], target, tmp_path / "b.md", tmp_path / "b.csv",
                        gpu_csv=csv_path, pass_csv=_pass_csv(tmp_path))
    text = (tmp_path / "b.md").read_text()
    assert "Step times: **measured** by benchmarks/gpu_check.py (cuda:0 (Test GPU)" in text
    assert "for 39 of 39 jobs" in text


def test_without_a_csv_the_budget_says_it_assumed(fx_summary, tmp_path):
    config, summary = fx_summary
    budget.write_budget(config, summary["runs"], str(_target(config, tmp_path)),
                        tmp_path / "b.md", tmp_path / "b.csv", pass_csv=_pass_csv(tmp_path))
    assert "Step times: the assumed GPU throughput" in (tmp_path / "b.md").read_text()


def test_a_csv_without_backbone_rows_is_an_error(tmp_path):
    path = tmp_path / "x.csv"
    pd.DataFrame([{"section": "step", "ms_per_step": 1.0, "status": "ok", "dataset": "",
                   "backbone": "", "batch": 0, "device": "d", "date": "t"}]).to_csv(path)
    with pytest.raises(ValueError, match="no completed 'backbone' rows"):
        budget.measured_steps(path)


def test_the_budget_times_nothing(fx_summary, tmp_path, monkeypatch):
    """Every number comes from the runs, the pass-time CSV (named with its machine in the
    table) and FLOP counts: the budget builds with the clock functions taken away."""
    config, summary = fx_summary
    config["compute_budget"] = {"config": "unused.yaml", "cpu_pass_csv": str(_pass_csv(tmp_path))}
    target = str(_target(config, tmp_path))

    def no_clock(*args, **kwargs):
        raise AssertionError("the compute budget read a clock")

    budget.backbone_flops.cache_clear()
    for name in ("process_time", "perf_counter", "thread_time", "monotonic", "time"):
        monkeypatch.setattr(time, name, no_clock)
        monkeypatch.setattr(time, f"{name}_ns", no_clock)
    budget.write_budget(config, summary["runs"], target, tmp_path / "b.md", tmp_path / "b.csv")
    monkeypatch.undo()
    text = (tmp_path / "b.md").read_text()
    assert (f"Backbone pass times (step 1): `{tmp_path / 'passes.csv'}` (measured on Test CPU; "
            "torch 9.9; today)") in text


def test_missing_pass_times_name_the_file(fx_summary, tmp_path):
    config, summary = fx_summary
    target = str(_target(config, tmp_path))
    args = (config, summary["runs"], target, tmp_path / "b.md", tmp_path / "b.csv")
    with pytest.raises(ValueError, match=r"nope\.csv: backbone pass times not found"):
        budget.write_budget(*args, pass_csv=tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="no backbone pass times; set compute_budget"):
        budget.write_budget(*args)
    pd.DataFrame([{"backbone": "digit_cnn", "batch": 8}]).to_csv(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match=r"bad\.csv: not a CSV of benchmarks/backbone_pass"):
        budget.write_budget(*args, pass_csv=tmp_path / "bad.csv")
    path = _pass_csv(tmp_path)
    path.write_text("\n".join(path.read_text().splitlines()[:1] + [
        line for line in path.read_text().splitlines() if line.startswith("tiny_vit")]) + "\n")
    with pytest.raises(ValueError, match=r"passes\.csv: no CPU pass time of digit_cnn at "
                       r"batch 8, 32 px, 1 thread\(s\)"):
        budget.write_budget(*args, pass_csv=path)
    assert not (tmp_path / "b.md").exists()


@pytest.mark.parametrize("name", ["digits_full"])
def test_committed_pass_times_cover_the_committed_configs(name):
    """Every pass the budget of a committed config looks up is in its committed CSV (the
    default config has no budget: it lacks most methods' step costs)."""
    config = load_config(REPO / "configs" / f"{name}.yaml")
    passes = budget.PassTimes.read(REPO / config["compute_budget"]["cpu_pass_csv"])
    for run in expand_runs(config):
        backbone = resolve(run.run_config)["model"]["backbone"]
        assert passes.of(budget.pass_key(config, run.dataset, run.run_config, backbone)) > 0


def test_backbone_pass_script_writes_what_the_budget_reads(tmp_path):
    bp = _script("backbone_pass")
    out = tmp_path / "p.csv"
    assert bp.main(["--settings", "digit_cnn:2:32:1", "--repeats", "2", "--warmup", "0",
                    "--out", str(out)]) == 0
    passes = budget.PassTimes.read(out)
    assert set(passes.ms) == {("digit_cnn", 2, 32, 1)}
    assert 0.0 < passes.of(("digit_cnn", 2, 32, 1)) < 5000.0
    assert "torch" in passes.describe([("digit_cnn", 2, 32, 1)])


def test_eval_forward_is_per_image_for_a_batchnorm1d_backbone():
    """The released Digits DTN has BatchNorm1d: a training-mode batch of one cannot pass it,
    so the per-image evaluation forward is the batch's forward / batch (FLOPs are linear in
    the batch), and the paper config's DTN jobs have an estimate."""
    fwd8, _ = budget.backbone_flops("dtn", 8, 32)
    fwd16, _ = budget.backbone_flops("dtn", 16, 32)
    assert fwd16 == pytest.approx(2 * fwd8)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        budget.backbone_flops("dtn", 1, 32)
    target = load_config(REPO / "configs" / "paper.yaml")
    run = next(r for r in expand_runs(target)
               if r.run_config.get("model", {}).get("backbone") == "dtn")
    assert budget.job_estimate(target, run, ratio=2.0)["gpu_hours"] > 0
