"""Fault injection on `ghuda train` (issue 23): concurrent runs on one folder, kill -9 inside a
checkpoint write, the metrics write and a history append, a full disk, corrupted and swapped
data files, edited run folders. Each fault gives one clear message, a documented exit status
(docs/config.md), and never leaves a complete-looking folder that is wrong."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ghuda.data import digits_mini
from ghuda.engine.cli import EXIT_CONFIG, EXIT_FOLDER, main
from ghuda.engine.trainer import Trainer
from ghuda.runs import RunFolder

RUN = ["train.checkpoint_every=5", "train.log_every=5", "train.eval_every=10"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _one_line(err: str) -> str:
    """The one error line (progress lines of the steps made may precede it)."""
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("ghuda train:")]
    assert len(lines) == 1, err
    return lines[0]


def _stable(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in ("cost", "provenance")}


def _same_as(out: Path, reference: Path) -> None:
    assert _stable(out) == _stable(reference)
    assert (out / "history.jsonl").read_bytes() == (reference / "history.jsonl").read_bytes()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, make_cfg) -> Path:
    out = tmp_path_factory.mktemp("reference")
    Trainer(make_cfg(*RUN), out, bar=False).run()
    return out


# ------------------------------------------------------------------ concurrent runs
HOLD = textwrap.dedent("""
    import sys, time
    from ghuda.runs import RunFolder
    with RunFolder(sys.argv[1]).lock():
        print("locked", flush=True)
        time.sleep(600)
""")


def test_a_second_process_on_a_busy_folder_is_refused(cli_args, tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], env=ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(cli_args(out, *RUN, "train.seed=1")) == EXIT_FOLDER
        line = _one_line(capsys.readouterr().err)
        assert f"{out} is in use by another process" in line
        assert sorted(p.name for p in out.iterdir()) == ["run.lock"]  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)  # the OS releases the lock of a killed process
        holder.wait()
    assert main(cli_args(out, *RUN, "train.seed=1")) == 0
    assert (out / "metrics.json").is_file()


def test_the_lock_is_exclusive_within_a_process_too(tmp_path):
    from ghuda.runs import RunFolderBusy

    folder = RunFolder(tmp_path / "run")
    with folder.lock(), pytest.raises(RunFolderBusy), RunFolder(tmp_path / "run").lock():
        pass
    with folder.lock():  # released on exit
        pass


# ------------------------------------------------------------------ kill -9 mid-write
KILL = textwrap.dedent("""
    import os, signal, sys
    from ghuda import runs
    from ghuda.engine import cli

    point, nth, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    calls = 0

    def due() -> bool:
        global calls
        calls += 1
        return calls == nth

    if point == "history":
        append = runs.History.append
        def half_then_die(self, record):
            if due():
                self._fh.write(runs.dumps(record).encode()[:20])
                self._fh.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            append(self, record)
        runs.History.append = half_then_die
    else:
        replace = os.replace
        def die_before_rename(src, dst):
            if os.path.basename(dst) == point and due():
                os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is fully written
            replace(src, dst)
        os.replace = die_before_rename
    sys.exit(cli.main(argv))
""")


@pytest.mark.parametrize(("point", "nth"), [
    ("checkpoint.pt", 2),   # inside the second checkpoint write (step 10)
    ("metrics.json", 1),    # inside the final metrics write
    ("history", 3),         # half-way through a history line (the eval of step 10)
])
def test_kill_9_inside_a_write_then_the_same_command_completes(point, nth, cli_args, tmp_path,
                                                                reference):
    out = tmp_path / "run"
    args = cli_args(out, *RUN)
    killed = subprocess.run([sys.executable, "-c", KILL, point, str(nth), "--no-progress", *args],
                            env=ENV, capture_output=True, text=True, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "metrics.json").exists()
    assert main(["--no-progress", *args]) == 0
    _same_as(out, reference)
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]  # leftovers removed


# ------------------------------------------------------------------ disk full
@pytest.mark.parametrize("where", ["history", "metrics"])
def test_disk_full_stops_with_one_line_and_resumes(where, cli_args, tmp_path, monkeypatch,
                                                   capsys, reference):
    import ghuda.engine.trainer as trainer_module
    from ghuda import runs

    out = tmp_path / "run"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / f"{where}.x"))

    with monkeypatch.context() as m:
        if where == "history":
            appends = {"n": 0}
            original = runs.History.append

            def append(self, record):
                appends["n"] += 1
                if appends["n"] == 4:
                    full()
                original(self, record)

            m.setattr(runs.History, "append", append)
        else:
            m.setattr(trainer_module, "write_json", full)
        assert main(cli_args(out, *RUN)) == EXIT_FOLDER
    line = _one_line(capsys.readouterr().err)
    assert f"cannot write the run folder {out} (No space left on device" in line
    assert not (out / "metrics.json").exists()
    assert main(cli_args(out, *RUN)) == 0
    _same_as(out, reference)


# ------------------------------------------------------------------ data files
@pytest.fixture
def data_copy(digits_mini_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(digits_mini_root / digits_mini.NAME, root / digits_mini.NAME)
    return root


def test_a_domain_file_swapped_for_another_is_named(cli_args, data_copy, tmp_path, capsys):
    folder = data_copy / digits_mini.NAME
    out = tmp_path / "run"
    assert main([*cli_args(out, *RUN), "--set", f"dataset.root={data_copy}"]) == 0  # caches
    capsys.readouterr()
    shutil.copy2(folder / "optdigits.npz", folder / "synth.npz")  # keeps the mtime
    assert main([*cli_args(tmp_path / "other", *RUN), "--set",
                 f"dataset.root={data_copy}"]) == EXIT_CONFIG
    line = _one_line(capsys.readouterr().err)
    assert f"checksum mismatch for {folder / 'synth.npz'}" in line
    assert "it holds the bytes of optdigits.npz, another domain's file" in line
    assert f"ghuda data build digits-mini --out {folder}" in line
    assert not (tmp_path / "other").exists()


def test_a_corrupt_npz_message_has_no_numpy_hint(data_copy):
    path = data_copy / digits_mini.NAME / "synth.npz"
    path.write_bytes(b"\x80\x04not a zip archive")
    with pytest.raises(ValueError, match=r"not an \.npz archive") as info:
        digits_mini.load_arrays(path.parent, "synth")
    assert "allow_pickle" not in str(info.value)


def test_recorded_data_must_match_to_skip(cli_args, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(cli_args(out, *RUN)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    data = metrics["provenance"]["data"]
    assert data["dataset"] == digits_mini.NAME
    assert set(data["files"]) == {"synth.npz", "optdigits.npz"}
    capsys.readouterr()
    # a run folder recorded on other data (here: another synth.npz) is refused, by file name
    other = json.loads(json.dumps(metrics))
    other["provenance"]["data"]["files"]["synth.npz"] = "0" * 64
    (out / "metrics.json").write_text(json.dumps(other))
    assert main(cli_args(out, *RUN)) == EXIT_FOLDER
    line = _one_line(capsys.readouterr().err)
    assert "read other data: synth.npz of digits_mini" in line
    assert "--fresh" in line
    # written before fingerprints existed: not recorded, so the completed run is kept
    del other["provenance"]["data"]
    (out / "metrics.json").write_text(json.dumps(other))
    assert main(cli_args(out, *RUN)) == 0
    assert "complete" in capsys.readouterr().err


# ------------------------------------------------------------------ edited run folders
def test_an_edited_config_yaml_is_not_answered_complete(cli_args, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(cli_args(out, *RUN)) == 0
    before = (out / "metrics.json").read_bytes()
    config = out / "config.yaml"
    config.write_text(config.read_text().replace("lr: 0.01", "lr: 0.05"))
    capsys.readouterr()
    assert main(cli_args(out, *RUN)) == EXIT_FOLDER
    line = _one_line(capsys.readouterr().err)
    assert "train.lr: 0.05 in the folder, 0.01 now" in line
    assert "--fresh" in line
    assert (out / "metrics.json").read_bytes() == before
    # the same command with the edited value: the recorded hash still tells
    assert main(cli_args(out, *RUN, "train.lr=0.05")) == EXIT_FOLDER
    assert "sha256" in _one_line(capsys.readouterr().err)
    assert main([*cli_args(out, *RUN), "--fresh"]) == 0


def test_a_truncated_history_under_a_checkpoint_is_refused(cli_args, make_cfg, tmp_path,
                                                           capsys, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(Trainer, "_iteration", _fail_on_call(Trainer._iteration, 12))
        with pytest.raises(RuntimeError, match="injected"):
            Trainer(make_cfg(*RUN), out, bar=False).run()
    (out / "history.jsonl").write_bytes(b"")
    assert main(cli_args(out, *RUN)) == EXIT_FOLDER
    line = _one_line(capsys.readouterr().err)
    assert "history.jsonl has 0 bytes but the checkpoint expects" in line
    assert not (out / "metrics.json").exists()


def _fail_on_call(function, nth: int):
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == nth:
            raise RuntimeError("injected")
        return function(*args, **kwargs)

    return wrapped
