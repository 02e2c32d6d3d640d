"""Wall time of the pipeline on a fresh clone, installation included (issue 26), with the
machine's speed measured beside it. Run by hand, not by CI:

    python benchmarks/reproduce_time.py [--rev HEAD] [--configfile configs/digits_full.yaml]
        [--out benchmarks/results/reproduce_time.csv]

Clones this repository at `--rev` into a fresh folder, then times three phases: the clone,
the installation (``make venv``: a new .venv from requirements.lock) and the pipeline
(``make reproduce``, or ``snakemake --cores all --configfile F`` with `--configfile`).
Before the clone it measures the machine: the median wall time of one plain DANN-style step of
the digit CNN (``benchmarks/harmonizer_step.py --models digit_cnn --only sum --threads 2``),
the measurement whose 2026-12-01 value is in benchmarks/results/harmonizer_step_cpu.csv, so
that times taken on different days, or on a machine that became slower, can be compared
(`speed_vs_reference`: reference step / this step). Appends one row to the CSV (earlier rows
are kept) and rewrites the Markdown table beside it (same name, ``.md``: minutes to one
decimal, the table the README's timing statements are checked against); a phase that fails
stops the script with its exit status and writes no row. ``--table-only`` rewrites the table
from the CSV.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib.csv_out import write_csv
from benchlib.provenance import date, load_average, machine_description

REPO = Path(__file__).resolve().parents[1]
FIELDS = ["date", "machine", "rev", "command", "clone_s", "install_s", "pipeline_s",
          "total_min", "install_and_pipeline_min", "load_before", "load_after",
          "calibration_step_ms", "reference_step_ms", "speed_vs_reference"]
REFERENCE = REPO / "benchmarks" / "results" / "harmonizer_step_cpu.csv"
CALIBRATION = ["--models", "digit_cnn", "--only", "sum", "--threads", "2", "--repeats", "100"]


def reference_step_ms(path: Path = REFERENCE) -> float | None:
    """The committed digit-CNN `sum` step (2 threads) that calibration compares with."""
    if not path.exists():
        return None
    for row in csv.DictReader(path.open()):
        if row["model"] == "digit_cnn" and row["config"] == "sum" and row["threads"] == "2":
            return float(row["wall_median_ms"])
    return None


def calibration_step_ms() -> float:
    """This machine's median digit-CNN `sum` step now (harmonizer_step.py, 2 threads)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "step.csv"
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "harmonizer_step.py"),
                        *CALIBRATION, "--out", str(out)], check=True, capture_output=True)
        return float(next(csv.DictReader(out.open()))["wall_median_ms"])


def markdown(rows: list[dict[str, str]]) -> str:
    """The CSV's rows as a Markdown table (minutes to one decimal, one row per measurement)."""
    def minutes(row: dict[str, str], key: str) -> str:
        return f"{float(row[key]) / 60:.1f}"

    def number(value: str, digits: int) -> str:
        return "—" if value == "" else f"{float(value):.{digits}f}"

    lines = ["**Wall time on a fresh clone (benchmarks/reproduce_time.py)**", "",
             "| date | revision | command | install (min) | pipeline (min) | install + "
             "pipeline (min) | load before | digit-CNN step (ms) | speed vs 2026-12-01 |",
             "|:---|:---|:---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['date'][:10]} | {row['rev']} | `{row['command']}` | "
                     f"{minutes(row, 'install_s')} | {minutes(row, 'pipeline_s')} | "
                     f"{float(row['install_and_pipeline_min']):.1f} | {row['load_before']} | "
                     f"{number(row['calibration_step_ms'], 2)} | "
                     f"{number(row['speed_vs_reference'], 2)} |")
    refs = {row["reference_step_ms"] for row in rows if row["reference_step_ms"]}
    ref_text = "".join(f", {float(r):.2f} ms" for r in sorted(refs))
    lines += ["", "digit-CNN step: median wall time of one plain DANN-style step of the digit "
              "CNN (benchmarks/harmonizer_step.py, `sum`, 2 threads) measured just before the "
              "clone; speed vs 2026-12-01: that day's step (benchmarks/results/"
              f"harmonizer_step_cpu.csv{ref_text}) divided by this one (below 1: a slower "
              "machine)."]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, rows: list[dict[str, str]]) -> None:
    """The CSV and its Markdown table (`markdown`)."""
    write_csv(out, FIELDS, rows)
    out.with_suffix(".md").write_text(markdown(
        list(csv.DictReader(out.open()))), encoding="utf-8")


def timed(command: list[str], cwd: Path, log: Path) -> float:
    """Run `command` in `cwd` (output to `log`) with the clone's .venv/bin first on PATH, as
    `make` puts it (the pipeline's rules call `ghuda` by name); its wall seconds, or exit with
    its status."""
    env = {**os.environ, "PATH": f"{cwd / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    with log.open("w") as out:
        status = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env=env).returncode
    if status:
        print(f"reproduce_time: {' '.join(command)} failed with exit status {status} (log: "
              f"{log})", file=sys.stderr)
        raise SystemExit(status)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=REPO, help="repository to clone (this one)")
    ap.add_argument("--rev", default="HEAD", help="revision to clone and time (HEAD)")
    ap.add_argument("--configfile", help="pipeline config (omit: make reproduce, the default)")
    ap.add_argument("--workdir", type=Path, help="parent of the fresh clone (a temporary "
                    "folder, kept afterwards so the outputs can be inspected)")
    ap.add_argument("--install", default="make venv", help="installation command (make venv)")
    ap.add_argument("--no-calibration", action="store_true", help="skip the step benchmark")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/reproduce_time.csv")
    ap.add_argument("--table-only", action="store_true", help="rewrite the Markdown table "
                    "from --out and time nothing")
    args = ap.parse_args(argv)
    if args.table_only:
        if not args.out.exists():
            raise SystemExit(f"reproduce_time: {args.out} does not exist")
        write_outputs(args.out, list(csv.DictReader(args.out.open())))
        return 0

    rev = subprocess.run(["git", "rev-parse", "--short", args.rev], cwd=args.repo, check=True,
                         capture_output=True, text=True).stdout.strip()
    pipeline = (["make", "reproduce"] if args.configfile is None else
                [".venv/bin/snakemake", "--cores", "all", "--configfile", args.configfile])
    calibration = None if args.no_calibration else calibration_step_ms()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="reproduce_time-"))
    clone = workdir / f"ghuda-{rev}"
    logs = workdir / f"logs-{rev}"
    logs.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    clone_s = timed(["git", "clone", "--quiet", "--no-checkout", str(args.repo), str(clone)],
                    workdir, logs / "clone.log")
    clone_s += timed(["git", "checkout", "--quiet", rev], clone, logs / "checkout.log")
    install_s = timed(args.install.split(), clone, logs / "install.log")
    pipeline_s = timed(pipeline, clone, logs / "pipeline.log")
    reference = reference_step_ms()
    row = {"date": date(), "machine": machine_description(), "rev": rev,
           "command": " ".join(pipeline), "clone_s": clone_s, "install_s": install_s,
           "pipeline_s": pipeline_s, "total_min": (clone_s + install_s + pipeline_s) / 60,
           "install_and_pipeline_min": (install_s + pipeline_s) / 60,
           "load_before": load_before, "load_after": load_average(),
           "calibration_step_ms": "" if calibration is None else calibration,
           "reference_step_ms": "" if reference is None else reference,
           "speed_vs_reference": "" if None in (calibration, reference)
           else reference / calibration}
    rows = list(csv.DictReader(args.out.open())) if args.out.exists() else []
    write_outputs(args.out, [*rows, row])
    print(f"reproduce_time: {rev}: clone {clone_s:.0f} s, install {install_s:.0f} s, "
          f"pipeline {pipeline_s:.0f} s ({row['install_and_pipeline_min']:.1f} min with the "
          f"installation); clone in {clone}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
