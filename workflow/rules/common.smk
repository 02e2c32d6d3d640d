# Shared definitions: the run grid, paths and helpers used by every rule file.
import logging
import os
import re
import sys
from pathlib import Path

import yaml

from ghuda.extensions.grid import expand_extension_runs
from ghuda.pipeline.batches import stale, train_batches
from ghuda.pipeline.grid import expand_runs, task_dir
from ghuda.report.outputs import figure_names, step_files, table_names



class OneMissingMetadataWarning(logging.Filter):
    """`snakemake --report` warns once per output that has no Snakemake metadata (200+ lines
    on a fresh clone, whose committed tables were not made here); say it once, plainly."""

    def __init__(self):
        super().__init__()
        self.seen = False

    def filter(self, record):
        if not str(record.msg).startswith("Missing metadata for file"):
            return True
        if self.seen:
            return False
        self.seen = True
        record.msg = (
            "Some outputs have no Snakemake metadata: they were not produced by a pipeline "
            "run in this folder (e.g. the committed tables and figures of a fresh clone). "
            "Run `snakemake --cores all` first for a complete report; further warnings of "
            "this kind are not shown."
        )
        record.args = ()
        return True


logging.getLogger("snakemake.logging").addFilter(OneMissingMetadataWarning())


class QuietInterrupt(logging.Filter):
    """Ctrl-C: Snakemake prints, per running job, its whole shell command twice (the train
    rule's holds the run config twice: 80+ lines). After "Terminating processes on user
    request" keep each job's error to its rule, output and log, drop the CalledProcessError
    of a job that exited 130 or died of SIGINT, and end with how to resume."""

    def __init__(self):
        super().__init__()
        self.interrupted = False

    def filter(self, record):
        msg = str(record.msg)
        if msg.startswith("Terminating processes on user request"):
            self.interrupted = True
        if not self.interrupted:
            return True
        if getattr(record, "shellcmd", None):
            record.shellcmd = None  # the "Error in rule" block without its "shell:" dump
        if "CalledProcessError" in msg and ("exit status 130" in msg or "SIGINT" in msg):
            return False
        if "At least one job did not complete successfully" in msg:
            record.msg = ("Interrupted: run the same snakemake command again to resume; an "
                          "interrupted training run continues from its last checkpoint.")
            record.args = ()
        return True


logging.getLogger("snakemake.logging").addFilter(QuietInterrupt())

RES = f"{config['results_dir']}/{config['name']}"
TABLES = config["tables_dir"]
# the paper config, whose values tables/fidelity.md compares with the release
PAPER_CONFIG = (config.get("compute_budget") or {}).get("config", "configs/paper.yaml")
FIGURES = config["figures_dir"]
# Jobs call `ghuda` = workflow/bin/ghuda, i.e. `python -m ghuda` with this checkout's src/ on
# PYTHONPATH. Without a software deployment method, `python` (and dvc) come from the
# environment running Snakemake (.venv, activated or not); with
# `--software-deployment-method conda`, from the environment workflow/envs/ghuda.yaml.
ENV = "../envs/ghuda.yaml"
_CONDA = "conda" in {str(m).lower() for m in workflow.deployment_settings.deployment_method}
_BIN = Path(workflow.basedir) / "workflow" / "bin"
_SRC = Path(workflow.basedir) / "src"
_PATH = f"{_BIN}" if _CONDA else f"{_BIN}:{Path(sys.executable).parent}"
# A job interrupted by Ctrl-C (`ghuda train` exits 130 after saving its state; a job whose shell
# died of SIGINT also ends with 130) says so in one line on the terminal; its log names the
# checkpoint. The prefix, not each rule's shell command, holds this line: Snakemake reruns
# every finished job whose rule's shell command changed (rerun trigger "code"), which for the
# train rule means retraining every run, but the prefix is not part of a rule's code.
INTERRUPTED = "interrupted; run the same command again to resume"
shell.prefix(
    f'set -euo pipefail; export PATH="{_PATH}:$PATH"; '
    # braces doubled twice: once for this f-string, once for Snakemake's formatting
    f'export PYTHONPATH="{_SRC}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; '
    f"trap 'rc=$?; if [ $rc -eq 130 ]; then echo \"{INTERRUPTED}\" >&2; fi; exit $rc' EXIT; "
)
RUNS = expand_runs(config)
# Training jobs: one per batch of runs (ghuda.pipeline.batches, `ghuda train-batch`), whose
# output is a marker under batches/; the runs' folders are the batch's work, not its outputs.
BATCH_WILDCARDS = "{dataset}/{task}/{method}/{variant}/seeds{first}-{last}"
BATCHES = train_batches(RUNS, config["train_batch_size"])


def batch_marker(rel):
    return f"{RES}/batches/{rel}.json"


# A marker whose batch lost a run's metrics.json (removed by hand) no longer says "done":
# removed here, so that the batch runs again (its complete runs are skipped).
for _rel, _batch in BATCHES.items():
    if stale(_batch, RES, batch_marker(_rel)):
        Path(batch_marker(_rel)).unlink()

wildcard_constraints:
    dataset=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    method=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    variant=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    task=r"[A-Za-z0-9][A-Za-z0-9_.-]*__[A-Za-z0-9][A-Za-z0-9_.-]*",
    seed=r"\d+",
    first=r"\d+",
    last=r"\d+",


def batch_of(wildcards):
    """The batch a train job's wildcards name (error if the config has no such batch)."""
    rel = (f"{wildcards.dataset}/{wildcards.task}/{wildcards.method}/{wildcards.variant}/"
           f"seeds{wildcards.first}-{wildcards.last}")
    try:
        return BATCHES[rel]
    except KeyError:
        raise ValueError(f"config {config['name']!r} has no training batch {rel}") from None


def metrics_files():
    """The training jobs' outputs (batch markers): once they exist, so does every run's
    metrics.json, which the report steps read from the run folders."""
    return [batch_marker(rel) for rel in BATCHES]


def feature_run_metrics():
    """Markers of the batches whose runs save features.npz (written before metrics.json)."""
    return [batch_marker(rel) for rel, b in BATCHES.items() if b.saves_features()]


def manifest_of(dataset):
    return config["datasets"][dataset]["data"]["manifest"]


def gpu_launcher(wildcards, resources):
    """Prefix that pins a GPU job to one free GPU (profile gpu-local sets gpu_lock: true)."""
    if config["gpu_lock"] and resources.gpu > 0:
        return f"python workflow/scripts/gpu_lock.py --gpus {resources.gpu} --"
    return ""


SUMMARY = {
    "runs": f"{RES}/summary/runs.csv",
    "train": f"{RES}/summary/history_train.csv.gz",
    "eval": f"{RES}/summary/history_eval.csv.gz",
}
TABLE_FILES = [f"{TABLES}/{n}" for n in table_names(config)]
LANDING = f"{RES}/report/tables.html"  # workflow/report/workflow.rst embeds this file
FIGURE_NAMES = figure_names(config)
# the config file the claims table's regenerating commands name
CONFIGFILE = (os.path.relpath(workflow.configfiles[0], workflow.basedir)
              if workflow.configfiles else "configs/default.yaml")
# the claims table reads every other step's output (ghuda.report.outputs.STEP_OUTPUTS)
CLAIMS_INPUTS = step_files(config, TABLES, FIGURES, without="claims")


def final_outputs():
    """Every table and figure of the config: the report rule's inputs."""
    out = list(TABLE_FILES)
    out += [f"{FIGURES}/{n}.{ext}" for n in FIGURE_NAMES for ext in ("png", "pdf")]
    out += step_files(config, TABLES, FIGURES)
    return out


# ---- extension runs (workflow/rules/extensions.smk)
EXT_RUNS = {r.key: r for r in expand_extension_runs(config)}
EXT_FETCH = {
    (e["extension"], e["data"]): e["fetch"]
    for e in config.get("extensions") or []
    if e.get("fetch")
}


def ext_run(wildcards):
    key = f"{wildcards.extension}/{wildcards.data}/{wildcards.variant}/seed{wildcards.seed}"
    try:
        return EXT_RUNS[key]
    except KeyError:
        raise ValueError(f"config {config['name']!r} has no extension run {key}") from None


def ext_inputs(wildcards):
    fetch = EXT_FETCH.get((wildcards.extension, wildcards.data))
    return [fetch["manifest"]] if fetch else []


EXT_WILDCARDS = "{extension}/{data}/{variant}/seed{seed}"
