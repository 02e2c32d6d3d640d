"""The Snakemake workflow without training: lint, dry runs, config errors, profiles."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import yaml
from conftest import REPO, copy_checkout, snakemake


def _train_jobs(dry_run_output: str, results: str = "results") -> Counter:
    """Training jobs (batches) per dataset in a dry run's output."""
    outputs = re.findall(rf"^rule train:\n(?:    .*\n)*?    output: {re.escape(results)}/\w+/"
                         r"batches/(\w+)/", dry_run_output, flags=re.MULTILINE)
    return Counter(outputs)


def _batches(config: dict) -> Counter:
    """Training batches per dataset the grid expands to (ghuda.pipeline.batches)."""
    from ghuda.pipeline.batches import train_batches
    from ghuda.pipeline.grid import expand_runs

    batches = train_batches(expand_runs(config), config["train_batch_size"])
    return Counter(b.runs[0].dataset for b in batches.values())


@pytest.mark.slow
def test_lint_is_clean():
    proc = snakemake("--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_paper_dry_run_lists_the_expected_training_jobs(tmp_path):
    from ghuda.pipeline.config import load_config

    config = load_config(REPO / "configs" / "paper.yaml")
    results = str(tmp_path / "results")
    proc = snakemake("-n", "--configfile", "configs/paper.yaml", "--config",
                     f"results_dir={results}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _train_jobs(proc.stdout, results)
    # one training job per batch of the grid's runs, per dataset (new datasets and methods
    # join)
    assert counts == _batches(config)
    assert set(counts) == set(config["datasets"])
    # every training job asks for one GPU, its memory and its run time
    resources = re.findall(r"^rule train:\n(?:    .*\n)*?    resources: (.*)$", proc.stdout,
                           flags=re.MULTILINE)
    assert len(resources) == sum(counts.values())
    assert all("gpu=1" in r and "runtime=" in r and "mem_mb=" in r for r in resources)


def test_default_dry_run_trains_the_default_grid(tmp_path):
    """Against an empty results folder, so that runs a `make reproduce` left in results/ do
    not change what the dry run plans."""
    from ghuda.pipeline.config import load_config

    results = str(tmp_path / "results")
    proc = snakemake("-n", "--config", f"results_dir={results}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = load_config(REPO / "configs" / "default.yaml")
    assert _train_jobs(proc.stdout, results) == _batches(config)
    for rule in ("aggregate", "tables", "theory", "verify", "claims", "report"):
        assert re.search(rf"^rule {rule}:", proc.stdout, flags=re.MULTILINE), rule


@pytest.mark.parametrize("configfile", [
    "configs/default.yaml", "configs/ci.yaml", "configs/ladder.yaml",
    pytest.param("configs/digits_full.yaml", marks=pytest.mark.slow)])
def test_claims_rule_reads_every_other_step_and_the_report_waits_for_it(configfile, tmp_path):
    """The claims table needs the theory, verify, extension ... outputs (issue 28): its rule
    takes every other step output of the config as input, and the report rule takes it."""
    from ghuda.pipeline.config import load_config
    from ghuda.report.outputs import step_files

    config = load_config(REPO / configfile)
    tables, figures = str(tmp_path / "t"), str(tmp_path / "f")
    proc = snakemake("-n", "--configfile", configfile, "--config",
                     f"results_dir={tmp_path / 'results'}", f"tables_dir={tables}",
                     f"figures_dir={figures}")
    assert proc.returncode == 0, proc.stderr[-3000:]

    def inputs(rule: str) -> set[str]:
        found = re.search(rf"^(?:local)?rule {rule}:\n(?:    .*\n)*?    input: (.*)$",
                          proc.stdout, flags=re.MULTILINE)
        assert found, rule
        return set(found.group(1).split(", "))

    needed = step_files(config, tables, figures, without="claims")
    assert f"{tables}/theory.md" in needed
    assert set(needed) <= inputs("claims")
    assert f"{tables}/extensions.md" in needed or not config.get("extensions")
    assert f"{tables}/claims.md" in inputs("report")


def test_ladder_dry_run_trains_every_rung_from_one_data_rule(tmp_path):
    """configs/ladder.yaml: its datasets entries (rungs) name one registered dataset; the
    dry run plans the training batches of 45 runs per rung its grid lists and one data rule
    for their shared manifest."""
    from ghuda.pipeline.check import check_pipeline
    from ghuda.pipeline.config import load_config
    from ghuda.pipeline.grid import expand_runs

    config = load_config(REPO / "configs" / "ladder.yaml")
    trained = {r.dataset for r in expand_runs(config)}
    assert check_pipeline(config) == 45 * len(trained)
    results = str(tmp_path / "results")
    proc = snakemake("-n", "--configfile", "configs/ladder.yaml", "--config",
                     f"results_dir={results}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _train_jobs(proc.stdout, results) == _batches(config)
    assert set(_batches(config)) == trained
    assert trained <= set(config["datasets"])
    for rule in ("tables", "figure", "fidelity"):
        assert re.search(rf"^rule {rule}:", proc.stdout, flags=re.MULTILINE), rule


@pytest.mark.parametrize(("edit", "message"), [
    ({"variants": {"gh": {"harmonizer": "gh"}}}, "'label' is a required property"),
    ({"grid": [{"name": "g", "methods": ["dann"], "variants": ["nope"], "seeds": [0]}]},
     "'grid/0(g)/variants' names 'nope'"),
    ({"gird": []}, "('gird' was unexpected)"),
    # run-config errors: found before any job is planned, not inside the first training job
    ({"run_defaults": {"train": {"stpes": 5}}},
     "run_defaults: unknown key 'train.stpes' (did you mean 'train.steps'?)"),
    ({"variants": {"gh": {"harmonizer": "gh", "label": "+GH", "options": {"t": 0.5}}}},
     "harmonizer.options.t: harmonizer 'gh' has no option 't'"),
])
def test_bad_config_names_the_key(tmp_path, edit, message):
    config = yaml.safe_load((REPO / "configs" / "ci.yaml").read_text())
    for key, value in edit.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = snakemake("-n", "--configfile", str(path))
    assert proc.returncode == 2
    output = proc.stdout + proc.stderr
    assert message in output
    assert str(path) in output
    assert "Traceback" not in output
    assert len(output.splitlines()) <= 3, output


def test_configfile_replaces_the_default_config_and_gpu_local_pins_gpus(tmp_path):
    work = copy_checkout(tmp_path / "clone")  # whatever results/ of the checkout holds
    plain = snakemake("-n", "-p", "--configfile", "configs/ci.yaml", cwd=work)
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert _train_jobs(plain.stdout) == {"digits_mini": 4}  # not merged with default.yaml
    # (4 variants of one seed: 4 batches)
    assert "gpu_lock.py" not in plain.stdout  # CPU jobs run directly
    proc = snakemake("-n", "-p", "--profile", "workflow/profiles/gpu-local", "--configfile",
                     "configs/ci.yaml", "--set-resources", "train:gpu=1", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("python workflow/scripts/gpu_lock.py --gpus 1 -- ghuda train") == 4


def test_slurm_profile_has_placeholders_requeue_and_retries():
    profile = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["slurm-requeue"] is True
    assert profile["retries"] >= 1
    assert profile["rerun-incomplete"] is True
    assert profile["default-resources"]["slurm_account"] == "YOUR_ACCOUNT"
    assert profile["default-resources"]["slurm_partition"] == "YOUR_PARTITION"
    proc = snakemake("-n", "--profile", "workflow/profiles/slurm", "--configfile",
                     "configs/ci.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_conda_env_pins_match_pyproject():
    import tomllib

    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "workflow" / "envs" / "ghuda.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(pins)


@pytest.mark.parametrize("config_name", ["default", "digits_full", "ci", "ladder"])
def test_every_run_of_the_digits_configs_builds(config_name, digits_mini_root, tmp_path):
    """Each (method, variant) of the CPU configs gets through Trainer.setup (method and
    harmonizer options are checked against their constructors there, not by the schema), so
    a bad method parameter fails here, not minutes into `make reproduce`."""
    from ghuda.config import load
    from ghuda.engine.trainer import Trainer
    from ghuda.pipeline.config import load_config
    from ghuda.pipeline.grid import expand_runs, run_config_for

    config = load_config(REPO / "configs" / f"{config_name}.yaml")
    seen = set()
    for run in expand_runs(config):
        if (run.dataset, run.method, run.variant) in seen:
            continue
        seen.add((run.dataset, run.method, run.variant))
        request = run_config_for(config, run.dataset, run.task, run.method, run.variant,
                                 run.seed)
        path = tmp_path / f"{run.method}-{run.variant}.yaml"
        path.write_text(yaml.safe_dump(request), encoding="utf-8")
        cfg = load(path, [f"dataset.root={digits_mini_root}"])
        Trainer(cfg, tmp_path / "out").setup()
    assert seen


def test_report_on_a_fresh_clone_warns_once_about_metadata(tmp_path):
    """`snakemake --report` before the pipeline ran: one plain line about missing metadata
    (not one per output), and the error names the first missing file."""
    work = copy_checkout(tmp_path / "clone")
    proc = snakemake("--report", "report.html", cwd=work)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Missing metadata" not in output
    assert output.count("Some outputs have no Snakemake metadata") == 1
    assert "Run `snakemake --cores all` first" in output
    assert not (work / "report.html").exists()
