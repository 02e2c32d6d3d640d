"""Pipeline configs: schema errors name the key; grid expansion; the shipped configs."""

from __future__ import annotations

import copy
import inspect
from pathlib import Path

import pytest
import yaml

from ghuda.config import ConfigError
from ghuda.pipeline.config import check_config, load_config, validate_schema
from ghuda.pipeline.grid import count_by_dataset, expand_runs, run_config_for, task_dir

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda c: c["variants"]["gh"].update(harmonizer=3), "variants/gh/harmonizer"),
    (lambda c: c["datasets"]["toy"].update(tasks=["a-b"]), "datasets/toy/tasks/0"),
    (lambda c: c["grid"][0].update(seeds=[0, 0]), "grid/0/seeds"),
    (lambda c: c.update(colour="red"), "'colour' was unexpected"),
    (lambda c: c["datasets"]["toy"].pop("data"), "'data' is a required property"),
    (lambda c: c["tables"].update(protocol="best"), "tables/protocol"),
    # the harmonizer switches' values are ghuda.config's (MODES, ORDERS, MEASURES)
    (lambda c: c["variants"]["gh"].update(order="backwards"), "variants/gh/order"),
    (lambda c: c["variants"]["gh"].update(measure="all"), "variants/gh/measure"),
    (lambda c: c["variants"]["gh"].update(mode="fast"), "variants/gh/mode"),
])
def test_schema_errors_name_the_key(fx_config, tmp_path, mutate, message):
    config = copy.deepcopy(fx_config)
    mutate(config)
    with pytest.raises(ConfigError, match="invalid value") as err:
        load_config(_write(tmp_path, config))
    assert message in str(err.value)
    assert str(tmp_path / "c.yaml") in str(err.value)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda c: c["grid"][0].update(variants=["sum", "nope"]), "grid/0(main)/variants"),
    (lambda c: c["grid"][1].update(tasks=["b->c"]), "grid/1(sweep)/tasks"),
    (lambda c: c["tables"].update(rows=["sum", "zz"]), "tables/rows"),
    (lambda c: c["variants"]["ghpp_t0"].update(options={}), "every swept variant must set t"),
])
def test_cross_references_are_checked(fx_config, mutate, message):
    mutate(fx_config)
    with pytest.raises(ConfigError, match=r"names|must") as err:
        check_config(fx_config)
    assert message in str(err.value)


def test_settings_have_every_schema_key_and_its_default():
    from dataclasses import fields

    from ghuda.pipeline.config import settings

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    view = settings({"tables": {"protocol": "oracle"}})
    for name in ("tables", "figures", "verify"):
        keys = set(schema["properties"][name]["properties"])
        assert {f.name for f in fields(getattr(view, name))} == keys
    assert (view.tables.baseline, view.tables.protocol, view.tables.rows) == ("sum", "oracle",
                                                                              None)
    assert view.figures.weights_angle_grid == 361
    assert view.verify.tolerance_pp == 2.0


def test_registry_check_names_unknown_method(fx_config):
    fx_config["grid"][0]["methods"] = ["dann", "frobnicate"]
    with pytest.raises(ConfigError, match=r"'frobnicate'.*allowed"):
        check_config(fx_config, check_registry=True)


def test_expand_runs_counts_deduplicates_and_paths(fx_config):
    fx_config["grid"].append(dict(fx_config["grid"][0], name="again"))  # same runs twice
    runs = expand_runs(fx_config)
    assert count_by_dataset(runs) == {"toy": 2 * 2 * 3 * 3 + 3}
    assert len({r.key for r in runs}) == len(runs)
    first = runs[0]
    assert first.rel_dir == "toy/a__b/dann/sum/seed0"
    assert task_dir("x_y->z") == "x_y__z"


def test_run_config_merge_order(fx_config):
    ds = fx_config["datasets"]["toy"]
    ds["run"] = {"train": {"lr": 0.1, "steps": 7}}
    ds["methods"] = {"dann": {"run": {"train": {"lr": 0.2}, "method": {"params": {"k": 1}}},
                              "resources": {"threads": 3},
                              "tasks": {"b->a": {"run": {"train": {"lr": 0.3}}}}}}
    rc = run_config_for(fx_config, "toy", "b->a", "dann", "ghpp", 2,
                        block_run={"train": {"steps": 9}})
    assert rc["train"]["lr"] == 0.3
    assert rc["train"]["steps"] == 9
    assert rc["train"]["seed"] == 2
    assert rc["train"]["threads"] == 3
    assert rc["method"] == {"name": "dann", "params": {"k": 1}}
    assert rc["harmonizer"] == {"name": "ghpp", "options": {"t": 0.5}}
    assert rc["dataset"] == {"name": "toy", "source": "b", "target": "a"}
    assert rc["variant"] == "ghpp"
    other = run_config_for(fx_config, "toy", "a->b", "cdan", "sum", 0)
    assert other["train"]["lr"] == 0.1
    assert "params" not in other["method"]


def test_features_must_name_trained_runs(fx_config):
    fx_config["features"] = [{"dataset": "toy", "task": "a->b", "method": "cdan",
                              "variants": ["ghpp_t0"], "seeds": [0]}]
    with pytest.raises(ValueError, match="features"):
        expand_runs(fx_config)


@pytest.mark.parametrize("name", ["default", "paper", "ci"])
def test_shipped_configs_validate_against_registries(name):
    from ghuda.pipeline.check import check_runs

    config = load_config(REPO / "configs" / f"{name}.yaml", check_registry=True)
    assert check_runs(config, name) == len(expand_runs(config)) > 0


def _cell_coverage(runs: list, method: str, variant: str) -> tuple[int, int]:
    cell = [r for r in runs if r.method == method and r.variant == variant]
    return len({r.seed for r in cell}), len({r.task for r in cell})


def _task_seeds(runs: list, method: str, variant: str, task: str) -> set[int]:
    return {r.seed for r in runs if (r.method, r.variant, r.task) == (method, variant, task)}


def test_default_config_is_the_powered_main_comparison():
    """Issue 14: source-only and the three main baselines x {none, GH, GH++}, >= 5 seeds."""
    runs = expand_runs(load_config(REPO / "configs" / "default.yaml"))
    assert _cell_coverage(runs, "source_only", "sum")[0] >= 5
    for method in ("dann", "cdan", "gvb"):
        for variant in ("sum", "gh", "ghpp"):
            assert _cell_coverage(runs, method, variant)[0] >= 5


def test_full_config_covers_the_study():
    """Issues 5, 14 and 26: every baseline x {none, GH, GH++} on >= 2 tasks with >= 3 seeds;
    the main rows on 3 tasks (two source domains) with at least the seed rule's minimum per
    task, every harmonized row paired (its seeds a subset of its baseline's); related
    harmonizers, CGDM and the t sweep."""
    from ghuda.report.seedrule import MIN_SEEDS

    config = load_config(REPO / "configs" / "digits_full.yaml")
    runs = expand_runs(config)
    for method in ("dann", "cdan", "gvb", "mcd", "dwl", "ssrt"):
        for variant in ("sum", "gh", "ghpp"):
            seeds, tasks = _cell_coverage(runs, method, variant)
            assert seeds >= 3
            assert tasks >= 2
    for method in ("source_only", "dann", "cdan", "gvb"):
        for variant in ("sum",) if method == "source_only" else ("sum", "gh", "ghpp"):
            for task in config["datasets"]["digits_mini"]["tasks"]:
                seeds = _task_seeds(runs, method, variant, task)
                assert set(range(MIN_SEEDS)) <= seeds
                assert seeds <= _task_seeds(runs, method, "sum", task)
    sources = {r.task.split("->")[0] for r in runs if r.method == "dann"}
    assert len(sources) >= 2
    for method in ("dann", "cdan"):
        assert {"pcgrad", "agr_sum", "agr_rand", "metaalign"} <= {
            r.variant for r in runs if r.method == method}
    assert {r.method for r in runs} >= {"source_only", "cgdm"}
    ts = sorted(config["variants"][v]["options"]["t"]
                for v in config["tables"]["t_sweep"]["variants"])
    assert ts == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_paper_method_params_fit_the_method_signatures():
    import ghuda.methods

    config = load_config(REPO / "configs" / "paper.yaml")
    seen = set()
    for run in expand_runs(config):
        params = run.run_config.get("method", {}).get("params", {})
        key = (run.method, tuple(sorted(params)))
        if key in seen:
            continue
        seen.add(key)
        accepted = inspect.signature(ghuda.methods.get(run.method)).parameters
        unknown = set(params) - set(accepted)
        assert not unknown, f"{run.rel_dir}: {run.method} has no parameters {unknown}"


def test_paper_config_uses_gpus_and_released_learning_rates():
    config = load_config(REPO / "configs" / "paper.yaml")
    runs = {r.key: r for r in expand_runs(config)}
    assert all(r.resources["gpu"] == 1 and r.run_config["train"]["device"] == "cuda"
               for r in runs.values())
    # released cdan/train_image.py: A->D 3e-4, A->W 1e-3 on Office-31
    cdan_ad = runs[("office31", "amazon->dslr", "cdan", "gh", 0)].run_config["train"]["lr"]
    cdan_aw = runs[("office31", "amazon->webcam", "cdan", "gh", 0)].run_config["train"]["lr"]
    assert (cdan_ad, cdan_aw) == (0.0003, 0.001)
    mcd = runs[("visda2017", "synthetic->real", "mcd", "sum", 1)].run_config
    assert mcd["model"]["backbone"] == "resnet101"
    assert mcd["train"]["lr_schedule"] == "constant"


def test_validate_schema_fills_defaults():
    config = validate_schema({"name": "x", "variants": {"sum": {"harmonizer": "sum",
                                                                 "label": "b"}},
                              "datasets": {"d": {"data": {"manifest": "m", "command": "c"},
                                                 "tasks": ["a->b"]}},
                              "grid": [{"name": "g", "methods": ["dann"], "variants": ["sum"],
                                        "seeds": [0]}]})
    assert config["results_dir"] == "results"
    assert config["tables"]["protocol"] == "last"
    assert config["resources"] == {"gpu": 0, "mem_mb": 2000, "runtime": 30, "threads": 1}


@pytest.mark.parametrize(("where", "edit", "message"), [
    ("run_defaults", lambda c: c["run_defaults"]["train"].update(stpes=5),
     "run_defaults: unknown key 'train.stpes' (did you mean 'train.steps'?)"),
    ("a grid block", lambda c: c["grid"][0].update(run={"train": {"lr": "fast"}}),
     "grid[0] (main).run: train.lr: expected float, got str 'fast'"),
    ("a method block", lambda c: c["datasets"]["digits_mini"].update(
        methods={"dann": {"run": {"method": {"params": {"trade_of": 1.0}}}}}),
     "the run digits_mini synth->optdigits dann/sum seed 0 (grid block 'main') has an invalid "
     "run config: method.params.trade_of: unknown option"),
    ("an extension entry", lambda c: c["extensions"][0].update(variants=["gh", "nope"]),
     "extensions entry retrieval/css_mini: unknown variant 'nope'"),
    ("an extension run", lambda c: c["extensions"][1].update(run={"train": {"stpes": 3}}),
     "the extension run detection/det_mini/sum/seed0 has an invalid run config: train: "
     "unknown keys ['stpes']"),
])
def test_config_check_validates_every_run_config(tmp_path, capsys, where, edit, message):
    from ghuda.pipeline.check import main

    config = yaml.safe_load((REPO / "configs" / "ci.yaml").read_text())
    assert main(["check", str(_write(tmp_path, config))]) == 0
    assert ("its 4 run configs and its 4 extension run configs are valid"
            in capsys.readouterr().out)
    edit(config)
    path = _write(tmp_path, config)
    assert main(["check", str(path)]) == 2, where
    err = capsys.readouterr().err
    assert f"{path}, {message}" in err or f"{path}: {message}" in err, err
    assert len(err.strip().splitlines()) == 1


def test_config_check_takes_a_run_config(capsys):
    from ghuda.pipeline.check import main

    assert main(["check", str(REPO / "configs" / "digits_mini.yaml")]) == 0
    assert "run config valid" in capsys.readouterr().out


def test_default_runs_are_digits_full_runs():
    """The default's run configs are exactly those of the same runs in digits_full (issue 14):
    its numbers are the full config's numbers on those rows, and runs can be shared."""
    full = {r.rel_dir: r.run_config for r in expand_runs(
        load_config(REPO / "configs" / "digits_full.yaml"))}
    default = expand_runs(load_config(REPO / "configs" / "default.yaml"))
    assert default
    for run in default:
        assert full.get(run.rel_dir) == run.run_config, run.rel_dir
