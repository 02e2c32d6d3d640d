"""`ghuda train-batch --requests FILE [--done FILE]`: many runs in one process (issue 26).

A batch pays Python's start and torch's import once, and reads a dataset once: its runs share
the splits (`SharedSplits`), memoized by the dataset section, the training crop of each domain
and the data fingerprint (`ghuda.data.fingerprint`: the manifest's and each domain file's
sha256), so a shared split is provably the data a run alone would read. Runs go one after the
other, each exactly as `ghuda train --config DIR/request.yaml --out DIR --record-divergence`
(the pipeline's train job of one run) with ``--fresh`` when the request changed: the request is
written to ``request.yaml`` only when it differs from the file there (and then the run starts
over), a completed run of the same request is skipped, a run with a checkpoint resumes, a
diverged run is recorded (``status: diverged``) and the batch goes on. Before each run the
process-global state a run reads but does not set is put back as it was when the batch
started (torch's thread count); seeds, determinism flags and RNG states are set by every run
itself (`ghuda.engine.runtime`). Each run's stderr goes to its own ``log`` file.

Requests file (JSON, ``-`` for stdin): a list of ``{"out": DIR, "request": YAML text,
"log": FILE or null}``. ``--done FILE`` is written (JSON, each run's folder and status) only
when every run ended with exit status 0.

Exit status: that of `ghuda train` (`ghuda.engine.cli`), for the first run that did not end
with 0; the batch stops there, before the later runs touch their folders (a run fails before
writing anything but its request.yaml, or keeps its checkpoint), and the message names the run
and its log. 130: interrupted (Ctrl-C); the interrupted run keeps its checkpoint and the same
command resumes it, skipping the runs already complete.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ghuda.config import ConfigError, load
from ghuda.engine.cli import EXIT_CONFIG, EXIT_INTERRUPTED, resume_hint, train_status

PROG = "ghuda train-batch"


@dataclass(frozen=True)
class BatchRun:
    """One run of a batch: its folder, its run config (YAML text) and its log file."""

    out: Path
    request: str
    log: Path | None = None


def read_requests(text: str, where: str) -> list[BatchRun]:
    """The runs of a requests file's `text` (module docstring); ConfigError names `where`."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: expected a non-empty list of runs")
    runs = []
    for i, item in enumerate(items):
        if not (isinstance(item, dict) and isinstance(item.get("out"), str)
                and isinstance(item.get("request"), str)
                and isinstance(item.get("log"), str | None)
                and set(item) <= {"out", "request", "log"}):
            raise ConfigError(f"{where}: run {i} must be {{'out': DIR, 'request': YAML text, "
                              f"'log': FILE or null}}, not {str(item)[:80]}")
        log = item.get("log")
        runs.append(BatchRun(Path(item["out"]), item["request"], Path(log) if log else None))
    folders = [r.out.resolve() for r in runs]
    if len(set(folders)) != len(folders):
        raise ConfigError(f"{where}: a run folder is listed twice")
    return runs


class SharedSplits:
    """`ghuda.engine.data.load_splits`, memoized by what decides the splits: the ``dataset``
    section, each domain's training crop and the data fingerprint; the `keep` most recent."""

    def __init__(self, keep: int = 1) -> None:
        self.keep, self.loads = keep, 0
        self._splits: OrderedDict[str, Any] = OrderedDict()

    def __call__(self, dataset: dict[str, Any],
                 train_crop: Callable[[str], str] | None = None) -> Any:
        from ghuda import data
        from ghuda.engine.data import load_splits

        domains = (dataset["source"], dataset["target"])
        crops = [train_crop(d) for d in domains] if train_crop else None
        fingerprint = data.fingerprint(dataset["name"], domains, dataset["root"])
        key = json.dumps([dataset, crops, fingerprint], sort_keys=True, default=str)
        if key not in self._splits:
            self._splits[key] = load_splits(dataset, train_crop)
            self.loads += 1
            while len(self._splits) > self.keep:
                self._splits.popitem(last=False)
        self._splits.move_to_end(key)
        return self._splits[key]


@contextmanager
def _output_to(log: Path | None) -> Iterator[None]:
    """stdout and stderr into `log` (truncated, as the shell's ``> log 2>&1``), if any."""
    if log is None:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as fh, redirect_stderr(fh), redirect_stdout(fh):
        yield


def write_request(run: BatchRun) -> bool:
    """Write ``request.yaml`` when it differs from the run's request; True when it did (the
    request changed or is new: the run starts over, ``--fresh``)."""
    from ghuda.runs import write_text

    path = run.out / "request.yaml"
    run.out.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_bytes() == run.request.encode("utf-8"):
        return False
    write_text(path, run.request)
    return True


def train_one(run: BatchRun, splits: SharedSplits, stop: Any) -> int:
    """One run as the pipeline's single-run job did it; its exit status (`ghuda train`'s)."""
    from ghuda.engine.trainer import Trainer

    fresh = write_request(run)
    try:
        cfg = load(run.out / "request.yaml", [])
    except ConfigError as err:
        print(f"{PROG}: config error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    trainer = Trainer(cfg, run.out, fresh=fresh, bar=False, record_divergence=True, stop=stop,
                      load_data=splits)
    try:
        return train_status(trainer, True, PROG)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the same command resumes this run "
              f"({resume_hint(trainer)}).", file=sys.stderr)
        raise


def train_batch(runs: list[BatchRun], stop: Any) -> tuple[int, list[dict[str, str]]]:
    """Train `runs` in order (module docstring); (exit status, each finished run's folder and
    metrics status). KeyboardInterrupt propagates, after the interrupted run's message."""
    import torch

    from ghuda.runs import read_json

    threads = torch.get_num_threads()
    splits, done = SharedSplits(), []
    for k, run in enumerate(runs, 1):
        stop.check()
        torch.set_num_threads(threads)  # a run's train.threads must not reach the next one
        where = f"run {k}/{len(runs)} ({run.out})"
        with _output_to(run.log):
            status = train_one(run, splits, stop)
        if status:
            print(f"{PROG}: {where} failed with exit status {status}; see "
                  f"{run.log or 'the lines above'}. The runs before it are complete; run the "
                  "same command again after fixing it.", file=sys.stderr)
            return status, done
        outcome = read_json(run.out / "metrics.json")["status"]
        done.append({"out": str(run.out), "status": outcome})
        print(f"{PROG}: {where}: {outcome}", file=sys.stderr, flush=True)
        gc.collect()
    return 0, done


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Train a list of runs in one process "
                                "(the pipeline's train jobs; docs/config.md). Re-running "
                                "the same command skips complete runs and resumes the others.")
    p.add_argument("--requests", metavar="FILE", required=True,
                   help="JSON list of {out, request, log} ('-': stdin)")
    p.add_argument("--done", metavar="FILE",
                   help="written (JSON: each run's folder and status) when every run ended "
                   "with exit status 0")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ghuda train-batch`; returns the exit status (module docstring)."""
    from ghuda.engine.interrupt import StopRequest
    from ghuda.runs import write_json

    args = _parser().parse_args(argv)
    try:
        text = sys.stdin.read() if args.requests == "-" else Path(args.requests).read_text(
            encoding="utf-8")
        runs = read_requests(text, args.requests)
    except (OSError, ConfigError) as err:
        print(f"{PROG}: config error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    stop = StopRequest()
    try:
        with stop:
            status, done = train_batch(runs, stop)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again: complete runs are skipped, "
              "the interrupted one resumes from its checkpoint.", file=sys.stderr)
        return EXIT_INTERRUPTED
    if status == 0 and args.done:
        write_json(args.done, {"runs": done})
    return status
