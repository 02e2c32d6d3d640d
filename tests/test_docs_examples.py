"""docs/extending.md's worked examples, followed as written: each code block is registered as
a new method or harmonizer and trained for 5 steps through the engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ghuda import config
from ghuda.engine.trainer import Trainer
from ghuda.harmonize import registry as harmonizer_registry
from ghuda.methods import registry as method_registry
from ghuda.report.figures import curve_harmonizers

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
TINY = ["train.steps=5", "train.batch_size=16", "train.eval_every=5", "train.log_every=1",
        "train.checkpoint_every=0", "train.threads=1", "model.options={widths: [8, 16, 16], "
        "feature_dim: 32}"]


def _blocks() -> dict[str, str]:
    """The doc's Python blocks, keyed by the file each one says it is."""
    blocks = re.findall(r"```python\n# (\S+)\n(.*?)```", DOC.read_text(encoding="utf-8"),
                        flags=re.DOTALL)
    return {path: code for path, code in blocks}


@pytest.fixture
def registries(monkeypatch):
    """Registrations made by a test are undone afterwards."""
    for registry in (method_registry.REGISTRY, harmonizer_registry.REGISTRY):
        monkeypatch.setattr(registry, "_classes", dict(registry._classes))


def _register(path: str) -> None:
    exec(compile(_blocks()[path], path, "exec"), {"__name__": Path(path).stem})


def _train(tmp_path: Path, root: Path, *overrides: str) -> dict:
    cfg = config.load(None, [f"dataset.root={root}", *TINY, *overrides])
    metrics = Trainer(cfg, tmp_path / "run").run()
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").open()]
    return {"metrics": metrics, "train": [r for r in history if r["kind"] == "train"]}


def test_the_doc_has_both_examples():
    assert set(_blocks()) == {"src/ghuda/methods/minent.py",
                              "src/ghuda/harmonize/gh_one_sided.py"}


def test_add_a_method_example_trains(registries, digits_mini_root, tmp_path):
    _register("src/ghuda/methods/minent.py")
    assert "minent" in method_registry.names()
    out = _train(tmp_path, digits_mini_root, "method.name=minent", "harmonizer.name=gh",
                 "method.params.trade_off=0.3")
    assert out["metrics"]["status"] == "completed"
    assert out["metrics"]["run"]["method"] == "minent"
    pairs = [p for r in out["train"] for p in r["pairs"]]
    assert len(pairs) == 5
    assert {(p["first"], p["second"]) for p in pairs} == {("transfer", "cls")}


def test_add_a_harmonizer_example_trains(registries, digits_mini_root, tmp_path):
    _register("src/ghuda/harmonize/gh_one_sided.py")
    assert "gh_one_sided" in harmonizer_registry.names()
    assert "gh_one_sided" in curve_harmonizers()  # joins the weights-vs-angle figures
    with pytest.raises(config.ConfigError, match="strength must be in"):
        config.load(None, ["harmonizer.name=gh_one_sided",
                           "harmonizer.options={strength: 2.0}"])
    import torch

    g1, g2 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([-2.0, 1.0],
                                                                          dtype=torch.float64)
    res = harmonizer_registry.make("gh_one_sided").harmonize(g1, g2)
    assert float(res.h1 @ g2) == pytest.approx(0.0, abs=1e-12)  # g1 projected off g2
    assert torch.equal(res.h2, g2)  # g2 untouched
    out = _train(tmp_path, digits_mini_root, "method.name=dann",
                 "harmonizer.name=gh_one_sided", "harmonizer.options={strength: 0.5}")
    assert out["metrics"]["status"] == "completed"
    assert out["metrics"]["run"]["harmonizer"] == "gh_one_sided"
    for p in (p for r in out["train"] for p in r["pairs"]):
        if p["conflict"]:  # g2 untouched, g1 partly projected: w1 = 1, w2 = 1 - 0.5 d/|g2|²
            assert p["w1"] == pytest.approx(1.0)
            assert p["w2"] > 1.0
