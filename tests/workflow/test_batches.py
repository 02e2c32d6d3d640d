"""Training batches (ghuda.pipeline.batches, workflow/rules/train.smk): every run in exactly
one batch; adding seeds reruns only the batches of their seed blocks, and a rerun batch skips
its complete runs; a run whose metrics.json was removed is trained again."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import REPO, copy_checkout, snakemake

from ghuda.pipeline.batches import train_batches
from ghuda.pipeline.config import load_config
from ghuda.pipeline.grid import expand_runs


@pytest.mark.parametrize("name", ["default", "digits_full", "ci", "paper"])
def test_every_run_is_in_one_batch_of_one_variant(name):
    config = load_config(REPO / "configs" / f"{name}.yaml")
    runs = expand_runs(config)
    size = config["train_batch_size"]
    batches = train_batches(runs, size)
    members = [r for b in batches.values() for r in b.runs]
    assert sorted(members, key=lambda r: r.key) == sorted(runs, key=lambda r: r.key)
    for batch in batches.values():
        assert len({(r.dataset, r.task, r.method, r.variant) for r in batch.runs}) == 1
        assert len({r.seed // size for r in batch.runs}) == 1
        res = batch.resources
        assert res["runtime"] == sum(r.resources["runtime"] for r in batch.runs)
        assert res["mem_mb"] == max(r.resources["mem_mb"] for r in batch.runs)


def test_adding_seeds_changes_only_their_blocks():
    config = load_config(REPO / "configs" / "default.yaml")
    runs = expand_runs(config)
    before = train_batches(runs, 2)
    fewer = train_batches([r for r in runs if r.seed != 4], 2)
    changed = {rel for rel in before if before[rel] != fewer.get(rel)}
    assert changed
    assert all(rel.endswith("seeds4-5") for rel in changed)
    with pytest.raises(ValueError, match="at least 1"):
        train_batches(runs, 0)


def _train_jobs(work, cfg) -> list[str]:
    proc = snakemake("-n", "--configfile", str(cfg), "--until", "train", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sorted(re.findall(r"^    output: \S+/batches/\S+/(seeds\d+-\d+)\.json$", proc.stdout,
                             flags=re.MULTILINE))


@pytest.mark.slow
def test_pipeline_batches_are_stable_and_skip_complete_runs(tmp_path):
    """configs/ci.yaml cut to one variant (DANN + GH, 20 steps), batches of 2 seeds: seeds 0-1 in
    one job; adding seed 2 runs one new job; adding seed 3 reruns that job, which trains only
    seed 3; removing seed 1's metrics.json reruns seeds 0-1, which trains only seed 1."""
    work = copy_checkout(tmp_path / "repo")
    config = yaml.safe_load((work / "configs" / "ci.yaml").read_text())
    config.update(train_batch_size=2, extensions=[])
    runs = work / "results" / "ci" / "digits_mini" / "synth__optdigits" / "dann" / "gh"
    cfg = work / "batch.yaml"

    def run(*seeds: int) -> dict[int, int]:
        config["grid"] = [{"name": "main", "methods": ["dann"], "variants": ["gh"],
                           "seeds": list(seeds)}]
        cfg.write_text(yaml.safe_dump(config))
        proc = snakemake("--cores", "2", "--configfile", str(cfg), "--until", "train",
                         cwd=work)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
        return {s: (runs / f"seed{s}" / "metrics.json").stat().st_mtime_ns for s in seeds}

    first = run(0, 1)
    assert _train_jobs(work, cfg) == []
    config["grid"][0]["seeds"] = [0, 1, 2]
    cfg.write_text(yaml.safe_dump(config))
    assert _train_jobs(work, cfg) == ["seeds2-3"]
    second = run(0, 1, 2)
    assert {s: second[s] for s in (0, 1)} == first
    third = run(0, 1, 2, 3)
    assert {s: third[s] for s in (0, 1, 2)} == second
    (runs / "seed1" / "metrics.json").unlink()
    config["grid"][0]["seeds"] = [0, 1, 2, 3]
    cfg.write_text(yaml.safe_dump(config))
    assert _train_jobs(work, cfg) == ["seeds0-1"]
    fourth = run(0, 1, 2, 3)
    assert fourth[0] == third[0]
    assert fourth[1] != third[1]
    assert {s: fourth[s] for s in (2, 3)} == {s: third[s] for s in (2, 3)}
