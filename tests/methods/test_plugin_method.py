"""Adding a method is one file: a toy method in a temporary module, found through
$GHUDA_PLUGINS, trains through `ghuda train` and appears in the tables."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from ghuda.pipeline.config import load_config
from ghuda.pipeline.grid import expand_runs

REPO = Path(__file__).resolve().parents[2]

PLUGIN = textwrap.dedent('''
    """A toy method: source-only with a one-layer head (the whole method in one file)."""
    from typing import ClassVar

    from torch import nn

    from ghuda.methods import Method, Stage, register
    from ghuda.methods.losses import cross_entropy


    @register("toy_plugin")
    class ToyPlugin(Method):
        label: ClassVar[str] = "Toy plugin"

        def __init__(self, backbone, feature_dim, num_classes, width: int = 8):
            super().__init__(backbone, feature_dim, num_classes)
            self.head = nn.Sequential(nn.Linear(feature_dim, width), nn.ReLU(),
                                      nn.Linear(width, num_classes))

        def param_groups(self):
            return {"backbone": list(self.backbone.parameters()),
                    "head": list(self.head.parameters())}

        def stages(self, batch, info):
            loss = cross_entropy(self.head(self.backbone(batch.x_src)), batch.y_src)
            yield Stage("main", {"cls": loss}, step=tuple(self.param_groups()))

        def predict(self, x):
            return self.head(self.backbone(x))
''')


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "ghuda", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_plugin_method_trains_and_reaches_the_tables(tmp_path, digits_mini_root):
    (tmp_path / "toy_plugin.py").write_text(PLUGIN)
    env = {**os.environ, "GHUDA_PLUGINS": "toy_plugin",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO / "src")])}
    config = yaml.safe_load((REPO / "configs/ci.yaml").read_text())
    config.update(name="plugin", results_dir=str(tmp_path / "results"),
                  tables_dir=str(tmp_path / "tables"), figures_dir=str(tmp_path / "figures"))
    config["run_defaults"]["dataset"]["root"] = str(digits_mini_root)
    config["grid"] = [{"name": "main", "methods": ["toy_plugin"], "variants": ["sum"],
                       "seeds": [0]}]
    config.pop("features")
    cfg_path = tmp_path / "plugin.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    (run,) = expand_runs(load_config(cfg_path))
    request = tmp_path / "request.yaml"
    request.write_text(yaml.safe_dump(run.run_config))
    out = tmp_path / "results" / "plugin" / run.rel_dir
    _run(["train", "--config", str(request), "--out", str(out)], env)
    assert (out / "metrics.json").exists()
    _run(["report", "aggregate", "--config", str(cfg_path), "--out", str(tmp_path / "s")], env)
    _run(["report", "tables", "--config", str(cfg_path), "--summary", str(tmp_path / "s"),
          "--reported", str(REPO / "configs/reported.yaml"), "--out", str(tmp_path / "t")],
         env)
    table = (tmp_path / "t" / "digits_mini.md").read_text()
    assert "| Toy plugin |" in table


def test_an_unimportable_plugin_is_named(tmp_path):
    env = {**os.environ, "GHUDA_PLUGINS": "no_such_plugin_module"}
    done = subprocess.run([sys.executable, "-c", "import ghuda.methods"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "GHUDA_PLUGINS: cannot import 'no_such_plugin_module'" in done.stderr
