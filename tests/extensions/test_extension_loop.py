"""The extension loop, grid and report on a toy task (no retrieval or detection model)."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from resume_cases import Interrupted, comparable
from torch import Tensor, nn

from ghuda import runs
from ghuda.config import ConfigError
from ghuda.engine.optim import step_decay
from ghuda.engine.step import NonFiniteLoss
from ghuda.extensions import base, loop, meta
from ghuda.extensions import grid as ext_grid
from ghuda.extensions.cli import main as ext_main
from ghuda.extensions.report import write_report


class ToyTask(base.ExtensionTask):
    """Two regression losses on a shared linear layer whose targets disagree (conflict)."""

    name = "toy"
    metrics = ("score", "other")
    primary = "score"

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.shared = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)
        self.scale = scale

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"shared": list(self.shared.parameters()), "head": list(self.head.parameters())}

    def pair(self) -> tuple[str, str, tuple[str, ...]]:
        return "a", "b", ("shared",)

    def losses(self, batch: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        noise = torch.randn(batch.shape, generator=generator) * 0.01
        out = self.head(torch.relu(self.shared(batch + noise))) * self.scale
        return {"a": (out[:, 0] - 1.0).pow(2).mean(), "b": (out[:, 1] + out[:, 0]).pow(2).mean()}

    def evaluate(self, data: Tensor) -> dict[str, float]:
        out = self.head(torch.relu(self.shared(data)))
        err = float((out[:, 0] - 1.0).pow(2).mean())
        return {"score": 100.0 / (1.0 + err), "other": 50.0}


def _batches(seed: int) -> Iterator[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(8, 4, generator=g) for _ in itertools.count())


@pytest.fixture(autouse=True)
def toy_registered(monkeypatch):
    def build(cfg):
        torch.manual_seed(cfg["seed"])
        return ToyTask(float(cfg["model"].get("scale", 1.0))), base.TaskData(
            _batches, torch.ones(16, 4), torch.full((16, 4), 0.5), "toy data")

    monkeypatch.setitem(base.BUILDERS, "toy", build)
    monkeypatch.setattr(loop, "TASK_MODULES", ())  # the toy alone: no model imports
    defaults = {"data": {"name": "toy_data"}, "model": {"scale": 1.0}, "task": {},
                "train": {"steps": 20, "eval_every": 5, "log_every": 2, "lr": 0.05}}
    monkeypatch.setattr(ext_grid, "task_defaults",
                        lambda ext, data: yaml.safe_load(yaml.safe_dump(defaults)))


def _config(harmonizer: str = "sum", **train) -> dict:
    return {"extension": "toy", "seed": 0, "model": {"scale": 1.0},
            "harmonizer": {"name": harmonizer},
            "train": {"steps": 20, "eval_every": 5, "log_every": 2, "lr": 0.05, **train}}


@pytest.mark.parametrize("harmonizer", ["sum", "gh", "ghpp"])
def test_run_writes_folder_with_three_protocols(tmp_path, harmonizer):
    metrics = loop.ExtensionRun(_config(harmonizer), tmp_path / "run").run()
    assert metrics["status"] == "completed"
    assert set(metrics["protocols"]) == {"last", "source_val", "oracle"}
    assert metrics["protocols"]["last"]["step"] == 20
    oracle = metrics["protocols"]["oracle"]["score"]
    assert oracle >= metrics["protocols"]["last"]["score"]
    assert oracle >= metrics["protocols"]["source_val"]["score"]
    folder = runs.RunFolder(tmp_path / "run")
    records = list(folder.read_history())
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, *range(3, 21, 2), 20]
    pair = train[0]["pairs"][0]
    assert (pair["first"], pair["second"]) == ("a", "b")
    assert {"cos", "angle_deg", "w1", "w2", "conflict"} <= set(pair)
    assert [r["step"] for r in records if r["kind"] == "eval"] == [5, 10, 15, 20]
    assert yaml.safe_load(folder.config.read_text())["harmonizer"]["name"] == harmonizer
    prov = metrics["provenance"]  # the engine's provenance
    assert prov["versions"]["torch"]
    assert prov["data"] == {"describe": "toy data"}
    assert prov["config_sha256"] == hashlib.sha256(folder.config.read_bytes()).hexdigest()
    assert metrics["schema"] == runs.SCHEMA_VERSION
    assert metrics["conflict"]["logged_steps"] == len(train)


def _reference_history(cfg: dict, path: Path) -> None:
    """The extension loop as it was before it became a client of the engine's loop (issue
    25), from the engine's parts: lr0 x multiplier x step decay set by hand, train records at
    the first step and every log_every after it, evaluations every eval_every steps."""
    from contextlib import nullcontext

    from ghuda.engine.amp import LossScaler
    from ghuda.engine.optim import GroupOptimizers
    from ghuda.engine.runtime import seed_everything
    from ghuda.engine.step import StepParts, run_stage
    from ghuda.harmonize import make
    from ghuda.methods.base import Pair, Stage

    cfg = loop.resolve(cfg)
    t, seed = cfg["train"], cfg["seed"]
    seed_everything(seed)
    task, data = base.BUILDERS["toy"](cfg)
    groups = task.param_groups()
    optim = GroupOptimizers(groups, task.lr_multipliers(), {**t, "lr_schedule": "constant"})
    parts = StepParts(task, optim, make(cfg["harmonizer"]["name"]), LossScaler(False),
                      nullcontext, order="released")
    pair = Pair(*task.pair()[:2], tuple(task.pair()[2]))
    generator = torch.Generator().manual_seed(seed)
    batches = data.batches(seed)
    history = runs.History(path, 0)
    for i in range(t["steps"]):
        decay = step_decay(t["lr_decay"], t["lr_decay_every"], t["lr_milestones"], i)
        for g, opt in optim.optimizers.items():
            for pg in opt.param_groups:
                pg["lr"] = t["lr"] * 1.0 * optim.multipliers[g] * decay
        task.train()
        stage = Stage("main", task.losses(next(batches), generator), step=tuple(groups),
                      pairs=(pair,))
        record = run_stage(parts, stage, i, i % t["log_every"] == 0 or i == t["steps"] - 1)
        if record is not None:
            history.append({"kind": "train", "step": i + 1, **record})
        if (i + 1) % t["eval_every"] == 0 or i + 1 == t["steps"]:
            task.eval()
            with torch.no_grad():
                history.append({"kind": "eval", "step": i + 1, "val": task.evaluate(data.val),
                                "test": task.evaluate(data.test)})
    history.close()


@pytest.mark.parametrize("harmonizer", ["gh", "agr_rand"])
def test_history_is_the_reference_loops_bytes(tmp_path, monkeypatch, harmonizer):
    """Through the engine's loop, an extension run writes the bytes of the loop it replaced
    (cadence, step decay and multipliers, record layout), for both harmonizer families."""
    monkeypatch.setattr(ToyTask, "lr_multipliers", lambda self: {"shared": 1.0, "head": 0.3})
    cfg = _config(harmonizer, lr_decay_every=4, checkpoint_every=5)
    loop.ExtensionRun(cfg, tmp_path / "run").run()
    _reference_history(cfg, tmp_path / "reference.jsonl")
    assert ((tmp_path / "run" / runs.HISTORY).read_bytes()
            == (tmp_path / "reference.jsonl").read_bytes())


def test_gh_changes_the_update_and_runs_are_deterministic(tmp_path):
    a = loop.ExtensionRun(_config("gh"), tmp_path / "a").run()
    b = loop.ExtensionRun(_config("gh"), tmp_path / "b").run()
    s = loop.ExtensionRun(_config("sum"), tmp_path / "s").run()
    assert a["protocols"] == b["protocols"]
    assert a["protocols"]["last"]["score"] != s["protocols"]["last"]["score"]


@pytest.mark.parametrize("harmonizer", ["gh", "agr_rand"])
def test_an_interrupted_run_resumes_to_the_bytes_of_an_uninterrupted_one(
        tmp_path, interrupt_at, harmonizer):
    """Checkpoint every 5 steps, killed at step 13: the rerun resumes at 10 and writes the
    history and metrics of a run never interrupted (and of one without checkpoints)."""
    cfg = _config(harmonizer, checkpoint_every=5, lr_decay_every=4)
    whole = loop.ExtensionRun(cfg, tmp_path / "whole").run()
    plain = loop.ExtensionRun({**cfg, "train": {**cfg["train"], "checkpoint_every": 0}},
                              tmp_path / "plain").run()
    interrupt_at(12)
    with pytest.raises(Interrupted):
        loop.ExtensionRun(cfg, tmp_path / "cut").run()
    cut = runs.RunFolder(tmp_path / "cut")
    assert cut.checkpoint.is_file()
    assert not cut.metrics.exists()
    resumed = loop.ExtensionRun(cfg, tmp_path / "cut").run()
    assert resumed["cost"]["resumed"]
    assert not whole["cost"]["resumed"]
    history = (tmp_path / "whole" / runs.HISTORY).read_bytes()
    assert cut.history.read_bytes() == history
    assert (tmp_path / "plain" / runs.HISTORY).read_bytes() == history
    assert comparable(resumed) == comparable(whole) == comparable(plain)
    assert not cut.checkpoint.exists()  # a completed run keeps no checkpoint


def test_a_checkpoint_of_another_config_is_refused_and_fresh_starts_over(
        tmp_path, interrupt_at):
    cfg = _config("gh", checkpoint_every=5)
    interrupt_at(7)
    with pytest.raises(Interrupted):
        loop.ExtensionRun(cfg, tmp_path / "r").run()
    other = _config("gh", checkpoint_every=5, lr=0.01)
    with pytest.raises(runs.RunFolderError, match=r"different configuration: .*train\.lr"):
        loop.ExtensionRun(other, tmp_path / "r").run()
    metrics = loop.ExtensionRun(other, tmp_path / "r").run(fresh=True)
    assert metrics["status"] == "completed"
    assert not metrics["cost"]["resumed"]
    assert yaml.safe_load((tmp_path / "r" / runs.CONFIG).read_text())["train"]["lr"] == 0.01


def test_a_completed_run_is_answered_from_its_folder_and_another_config_refused(tmp_path):
    """As a UDA run's folder (`ghuda.engine.identity`): the same config again is not retrained,
    another config is refused with the differing key named, and nothing is overwritten."""
    cfg = _config("gh")
    first = loop.ExtensionRun(cfg, tmp_path / "r").run()
    folder = runs.RunFolder(tmp_path / "r")
    files = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.all()
             if path.exists()}
    again = loop.ExtensionRun(cfg, tmp_path / "r").run()
    assert again == folder.read_metrics()
    assert again["cost"]["wall_s"] == first["cost"]["wall_s"]
    with pytest.raises(runs.RunFolderError,
                       match=r"completed run of a different configuration: .*train\.lr"):
        loop.ExtensionRun(_config("gh", lr=0.01), tmp_path / "r").run()
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.all()
            if path.exists()} == files


def test_a_folder_another_process_holds_is_refused_untouched(tmp_path):
    with runs.RunFolder(tmp_path / "r").lock(), pytest.raises(runs.RunFolderBusy):
        loop.ExtensionRun(_config(), tmp_path / "r").run()
    assert not (tmp_path / "r" / runs.CONFIG).exists()


def test_a_corrupt_checkpoint_exits_with_the_folder_status(tmp_path, interrupt_at, capsys):
    cfg = _config("gh", checkpoint_every=5)
    interrupt_at(7)
    with pytest.raises(Interrupted):
        loop.ExtensionRun(cfg, tmp_path / "r").run()
    (tmp_path / "r" / runs.CHECKPOINT).write_bytes(b"not a checkpoint")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert ext_main(["train", "--config", str(tmp_path / "c.yaml"),
                     "--out", str(tmp_path / "r")]) == 4
    assert "corrupt" in capsys.readouterr().err
    assert ext_main(["train", "--config", str(tmp_path / "c.yaml"), "--out",
                     str(tmp_path / "r"), "--fresh"]) == 0


def test_divergence_recorded_or_raised(tmp_path):
    cfg = _config(lr=1e6)
    cfg["model"]["scale"] = 1e3
    metrics = loop.ExtensionRun(cfg, tmp_path / "d", record_divergence=True).run()
    assert metrics["status"] == "diverged"
    assert metrics["protocols"] == {}
    assert metrics["failure"]["iteration"] >= 1
    with pytest.raises(NonFiniteLoss):
        loop.ExtensionRun(cfg, tmp_path / "e").run()
    assert not (tmp_path / "e" / runs.METRICS).exists()


@pytest.mark.parametrize(("change", "words"), [
    ({"colour": 1}, "unknown keys ['colour']"),
    ({"extension": "nope"}, "'nope' is not a task"),
    ({"harmonizer": {"name": "nope"}}, "harmonizer.name"),
    ({"harmonizer": {"name": "gh", "order": "up"}}, "harmonizer.order"),
    ({"train": {"stpes": 3}}, "unknown keys ['stpes']"),
    ({"train": {"steps": 0}}, "train.steps"),
    ({"seed": -1}, "seed"),
    ({"train": {"lr_milestones": [0]}}, "train.lr_milestones"),
    ({"train": {"lr_milestones": [5], "lr_decay_every": 5}}, "not both"),
])
def test_bad_config_names_the_key(change, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        loop.resolve({**_config(), **change})


def test_step_decay_and_selection():
    assert [step_decay(0.1, 10, [], s) for s in (0, 9, 10, 25)] == pytest.approx(
        [1, 1, 0.1, 0.01])
    t = meta.TRAIN_DEFAULTS
    assert step_decay(t["lr_decay"], t["lr_decay_every"], t["lr_milestones"], 10**6) == 1.0
    assert [step_decay(0.1, None, [80, 100], s) for s in (79, 80, 99, 100)] == pytest.approx(
        [1, 0.1, 0.1, 0.01])
    evals = [{"step": 1, "val": {"m": 5}, "test": {"m": 9}},
             {"step": 2, "val": {"m": 7}, "test": {"m": 3}},
             {"step": 3, "val": {"m": 7}, "test": {"m": 4}}]
    chosen = loop.select(evals, "m")
    assert {k: v["step"] for k, v in chosen.items()} == {"last": 3, "source_val": 2, "oracle": 1}


def test_cli_train_and_bad_config(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(_config("ghpp")))
    assert ext_main(["train", "--config", str(path), "--out", str(tmp_path / "r"),
                     "--set", "train.steps=6", "--set", "seed=3"]) == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert (metrics["run"]["seed"], metrics["run"]["steps"]) == (3, 6)
    assert "done; last: score" in capsys.readouterr().out
    assert ext_main(["train", "--config", str(path), "--out", str(tmp_path / "x"),
                     "--set", "train.bogus=1"]) == 2
    assert "train: unknown keys ['bogus']" in capsys.readouterr().err
    assert not (tmp_path / "x" / "metrics.json").exists()


def _pipeline_config() -> dict:
    return {"variants": {"sum": {"harmonizer": "sum", "label": "baseline"},
                         "gh": {"harmonizer": "gh", "label": "+GH"},
                         "ghpp": {"harmonizer": "ghpp", "options": {"t": 0.5},
                                  "label": "+GH++"}},
            "tables": {"baseline": "sum", "protocol": "last"},
            "extensions": [{"extension": "toy", "data": "toy_data",
                            "variants": ["sum", "gh", "ghpp"], "seeds": [0, 1, 2],
                            "run": {"train": {"steps": 12}}}]}


def test_grid_expands_variants_and_seeds():
    specs = ext_grid.expand_extension_runs(_pipeline_config())
    assert [s.key for s in specs][:2] == ["toy/toy_data/sum/seed0", "toy/toy_data/sum/seed1"]
    assert len(specs) == 9
    ghpp = specs[-1].run_config
    assert ghpp["harmonizer"] == {"name": "ghpp", "options": {"t": 0.5}, "order": "released"}
    assert (ghpp["train"]["steps"], ghpp["train"]["eval_every"]) == (12, 5)
    assert (ghpp["seed"], ghpp["extension"]) == (2, "toy")
    bad = _pipeline_config()
    bad["extensions"][0]["variants"] = ["nope"]
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        ext_grid.expand_extension_runs(bad)


def test_report_tables_and_figures(tmp_path):
    config = _pipeline_config()
    results = tmp_path / "ext"
    for spec in ext_grid.expand_extension_runs(config):
        loop.ExtensionRun(spec.run_config, results / spec.key).run()
    written = write_report(config, results, tmp_path / "tables", tmp_path / "figures")
    assert {p.name for p in written} == {
        "extensions.md", "extensions.tex", "extension_conflict.png", "extension_conflict.pdf",
        "extension_weights_vs_angle.png", "extension_weights_vs_angle.pdf"}
    md = (tmp_path / "tables" / "extensions.md").read_text()
    main_table = md.split("by model selection")[0]
    rows = {line.split("|")[1].strip(): line for line in main_table.splitlines()
            if line.startswith("| +GH") or line.startswith("| baseline")}
    assert set(rows) == {"baseline", "+GH", "+GH++"}
    cells = [c.strip() for c in rows["+GH"].split("|")[1:-1]]
    # Variant, score, other, Δ [CI], p, n, div., s / run
    assert (cells[2], cells[5], cells[6]) == ("50.0 ± 0.0", "3", "0/3")
    assert "[" in cells[3]
    assert "oracle (test labels)" in md
    (results / "toy/toy_data/gh/seed1/metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"seed1/metrics\.json"):
        write_report(config, results, tmp_path / "t2", tmp_path / "f2")
    assert not Path(tmp_path / "t2").exists()
