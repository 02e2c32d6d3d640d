"""configs/ci.yaml through the whole pipeline in a copy of the checkout (a few minutes).

Every rule runs for real: data (digits-mini built through `ghuda data get`), 4 training runs,
4 extension runs (retrieval and detection, none and GH, 3 steps), aggregate, tables, figures,
theory, verify, extension report, report; then a second invocation has nothing to
do, and `snakemake --report` builds the HTML report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import copy_checkout, snakemake

from ghuda.report.outputs import figure_names, step_outputs, table_names
from ghuda.report.render import from_markdown
from ghuda.report.verdicts import VERDICTS


def step_tables(config) -> list[str]:
    """The table files of the config's pipeline steps besides `ghuda report tables`."""
    return [name for step in step_outputs(config) for name in step.tables]


@pytest.mark.slow
def test_ci_config_end_to_end(tmp_path):
    work = copy_checkout(tmp_path / "repo")
    proc = snakemake("--cores", "2", "--configfile", "configs/ci.yaml", cwd=work, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]

    config = yaml.safe_load((work / "configs" / "ci.yaml").read_text())
    tables, figures = work / config["tables_dir"], work / config["figures_dir"]
    for name in [*table_names(config), *step_tables(config), "README.md"]:
        assert (tables / name).stat().st_size > 0, name
    for name in [*figure_names(config), *[f for s in step_outputs(config) for f in s.figures]]:
        for ext in ("png", "pdf"):
            assert (figures / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"
    main = (tables / "digits_mini.md").read_text()
    for row in ("| DANN |", "| CDAN+E |", "| +GH |"):
        assert row in main
    assert "nothing to verify" in (tables / "verify.md").read_text()
    extensions = (tables / "extensions.md").read_text()
    for caption in ("Image retrieval with text feedback on css_mini", "Object detection on "
                    "det_mini", "recall@1", "mAP@0.5"):
        assert caption in extensions
    claims = from_markdown((tables / "claims.md").read_text())[0]
    assert claims.rows
    assert all(row[1] in VERDICTS for row in claims.rows)
    dann = next(r for r in claims.rows if r[0].startswith("GH improves DANN"))
    assert dann[6].startswith("cpu")  # hardware and time from the runs' cost blocks
    assert "min in" in dann[7]

    again = snakemake("-n", "--configfile", "configs/ci.yaml", cwd=work)
    assert "Nothing to be done" in again.stdout + again.stderr

    report = snakemake("--report", "report.html", "--configfile", "configs/ci.yaml", cwd=work)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "metadata" not in report.stdout + report.stderr
    html = (work / "report.html").read_text(errors="replace")
    assert len(html) > 100_000
    for name in ("digits_mini.md", "conflict_over_training.png", "verify.md"):
        assert name in html
    # the landing page describes the artifact and shows the main tables rendered
    assert "Gradient Harmonization in Unsupervised Domain Adaptation, reproduced" in html
    assert "Claims of the paper: verdicts" in html
    assert "Main table: digits-mini" in html
    assert 'text-align:left\\">Method</th>' in html  # a rendered table (JSON-escaped)


# One interrupted and one resumed pass of configs/ci.yaml cost more than 90 s of CPU on the
# 2-core development machine (the whole pipeline: 4 training and 4 extension runs, figures,
# theory, report); measured in the session that wrote this test.
CTRL_C_SKIP = ("Ctrl-C + rerun of configs/ci.yaml costs several CPU minutes here; run with "
               "GHUDA_SLOW_PIPELINE=1")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("GHUDA_SLOW_PIPELINE") != "1", reason=CTRL_C_SKIP)
def test_ctrl_c_then_the_same_command_resumes(tmp_path):
    """SIGINT to Snakemake's process group (what Ctrl-C sends) once a training job has a
    checkpoint: a short message (no shell-command dump), then the same command completes and
    the interrupted run resumed from its checkpoint."""
    work = copy_checkout(tmp_path / "repo")
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "configs/ci.yaml"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    runs = work / "results" / "ci" / "digits_mini"
    deadline = time.monotonic() + 600
    while not (interrupted := sorted(runs.glob("**/checkpoint.pt"))):
        assert proc.poll() is None, proc.stdout.read()[-5000:]
        assert time.monotonic() < deadline, "no training checkpoint within 600 s"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0
    after = out[out.index("Terminating processes on user request"):]
    assert "interrupted; run the same command again to resume" in after
    assert "Interrupted: run the same snakemake command again to resume" in after
    assert "CalledProcessError" not in after
    assert "request.yaml" not in after  # the train rule's shell command is not printed
    assert len(after.splitlines()) < 30, after
    run = interrupted[0].parent
    assert not (run / "metrics.json").exists()

    again = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                           timeout=1800, check=False)
    assert again.returncode == 0, (again.stdout + again.stderr)[-5000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["cost"]["resumed"] is True
    config = yaml.safe_load((work / "configs" / "ci.yaml").read_text())
    tables = work / config["tables_dir"]
    for name in [*table_names(config), *step_tables(config), "README.md"]:
        assert (tables / name).stat().st_size > 0, name
