"""Adding a method is its module plus the config lines that list it: a toy method in a
temporary plug-in module (found through $GHUDA_PLUGINS), listed in a copy of the default
config's main grid block, trains, reaches the main table, and the method suites pass with it
registered (issue 25)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from ghuda import cli, methods
from ghuda.pipeline.config import load_config
from ghuda.pipeline.grid import expand_runs
from ghuda.registry import PLUGINS_ENV

REPO = Path(__file__).resolve().parents[2]

# A harmonized pair and no `Stage.reevaluate` (optional): the whole method in one file.
PLUGIN = textwrap.dedent('''
    """A toy method: target entropy harmonized against source cross-entropy."""
    from typing import ClassVar

    from torch import nn

    from ghuda.methods import Method, Pair, Stage, register
    from ghuda.methods.losses import cross_entropy, entropy


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
            losses = {"transfer": entropy(self.predict(batch.x_tgt).softmax(dim=1)).mean(),
                      "cls": cross_entropy(self.predict(batch.x_src), batch.y_src)}
            yield Stage("main", losses, step=tuple(self.param_groups()),
                        pairs=(Pair("transfer", "cls", ("backbone",)),))

        def predict(self, x):
            return self.head(self.backbone(x))
''')
# the method suites parametrized over the registered methods
SUITES = ["tests/methods/test_method_contract.py", "tests/methods/test_switches.py",
          "tests/related/test_related_training.py"]


def _default_config_listing_the_plugin(tmp_path: Path, root: Path) -> Path:
    """configs/default.yaml with the plug-in added to the main block (the one edit a user
    makes), then made tiny for the test: one task, one seed, 2 steps, outputs under tmp."""
    config = yaml.safe_load((REPO / "configs/default.yaml").read_text())
    (main,) = [b for b in config["grid"] if b["name"] == "main"]
    main["methods"].append("toy_plugin")
    config.update(name="plugin", results_dir=str(tmp_path / "results"),
                  tables_dir=str(tmp_path / "tables"), figures_dir=str(tmp_path / "figures"))
    config["run_defaults"]["dataset"]["root"] = str(root)
    config["run_defaults"]["train"].update(steps=2, eval_every=2, log_every=1,
                                           checkpoint_every=0)
    dataset = config["datasets"]["digits_mini"]
    dataset["tasks"] = dataset["tasks"][:1]
    for block in config["grid"]:
        block["seeds"] = [0]
    config.pop("features")
    path = tmp_path / "plugin.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_plugin_method_listed_in_the_default_config_reaches_the_main_table(
        tmp_path, digits_mini_root, monkeypatch):
    (tmp_path / "toy_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(PLUGINS_ENV, "toy_plugin")
    monkeypatch.delitem(sys.modules, "toy_plugin", raising=False)
    monkeypatch.setattr(methods.REGISTRY, "_classes", dict(methods.REGISTRY._classes))
    methods.REGISTRY.discover()
    assert "toy_plugin" in methods.names()

    cfg_path = _default_config_listing_the_plugin(tmp_path, digits_mini_root)
    config = load_config(cfg_path)
    runs = expand_runs(config)
    assert {r.variant for r in runs if r.method == "toy_plugin"} == {"sum", "gh", "ghpp"}
    for run in runs:
        request = tmp_path / "requests" / run.rel_dir / "request.yaml"
        request.parent.mkdir(parents=True)
        request.write_text(yaml.safe_dump(run.run_config))
        out = Path(config["results_dir"]) / config["name"] / run.rel_dir
        assert cli.main(["train", "--config", str(request), "--out", str(out),
                         "--no-progress"]) == 0
    summary, tables = tmp_path / "summary", tmp_path / "tables"
    assert cli.main(["report", "aggregate", "--config", str(cfg_path), "--out",
                     str(summary)]) == 0
    assert cli.main(["report", "tables", "--config", str(cfg_path), "--summary", str(summary),
                     "--reported", str(REPO / "configs/reported.yaml"), "--out",
                     str(tables)]) == 0
    table = (tables / "digits_mini.md").read_text()
    assert "| Toy plugin |" in table
    assert "| GVB-GD |" in table

    # the method suites iterate over the plug-in too, and pass
    env = {**os.environ, PLUGINS_ENV: "toy_plugin",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO / "src")])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-k", "toy_plugin", *SUITES], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout, done.stdout


def test_an_unimportable_plugin_is_named(tmp_path):
    env = {**os.environ, "GHUDA_PLUGINS": "no_such_plugin_module"}
    done = subprocess.run([sys.executable, "-c", "import ghuda.methods"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "GHUDA_PLUGINS: cannot import 'no_such_plugin_module'" in done.stderr
