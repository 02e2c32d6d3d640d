"""Every user error a newcomer met (issue 15): its exit status, one message naming the file or
key and the fix, no traceback, and nothing half-written."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ghuda.data import digits_mini
from ghuda.engine.cli import EXIT_CONFIG, EXIT_FOLDER, EXIT_INTERRUPTED, main


@pytest.fixture
def broken_root(digits_mini_root: Path, tmp_path: Path):
    """A copy of digits-mini whose synth.npz is damaged by `damage(path)`."""

    def make(damage) -> Path:
        root = tmp_path / "data"
        shutil.copytree(digits_mini_root / digits_mini.NAME, root / digits_mini.NAME)
        damage(root / digits_mini.NAME / "synth.npz")
        return root

    return make


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:4096] = b"\0" * 4096
    data[-4096:] = b"\0" * 4096
    path.write_bytes(bytes(data))


def _one_paragraph(err: str) -> None:
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("damage", [_truncate, _garble], ids=["truncated", "corrupted"])
def test_damaged_digits_mini_names_the_file_and_the_rebuild(broken_root, cli_args, damage,
                                                            tmp_path, capsys):
    root = broken_root(damage)
    out = tmp_path / "run"
    assert main([*cli_args(out), "--set", f"dataset.root={root}"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    _one_paragraph(err)
    assert str(root / "digits_mini" / "synth.npz") in err
    assert f"ghuda data build digits-mini --out {root / 'digits_mini'}" in err
    assert not out.exists()


def test_verify_of_a_damaged_file_says_how_to_rebuild(broken_root, capsys):
    from ghuda.data.cli import main as data_main

    root = broken_root(_truncate)
    assert data_main(["verify", "digits-mini", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    _one_paragraph(err)
    assert "checksum mismatch" in err
    assert f"ghuda data build digits-mini --out {root / 'digits_mini'}" in err


def test_out_pointing_at_a_file(cli_args, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    assert main(cli_args(target)) == EXIT_FOLDER
    err = capsys.readouterr().err
    _one_paragraph(err)
    assert f"--out {target} is an existing file, not a folder" in err
    assert target.read_text() == "keep me\n"
    assert main(cli_args(target / "run")) == EXIT_FOLDER  # below a file: same error
    assert f"its parent {target} is an existing file" in capsys.readouterr().err


def test_cuda_without_a_gpu(cli_args, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "run"
    assert main(cli_args(out, "train.device=cuda")) == EXIT_CONFIG
    err = capsys.readouterr().err
    _one_paragraph(err)
    assert "train.device: 'cuda' requested but this machine has no CUDA GPU" in err
    assert "--set train.device=cpu" in err
    assert not out.exists()


def test_missing_data_hint_uses_cli_wording(cli_args, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*cli_args(out), "--set", f"dataset.root={tmp_path / 'empty'}"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    _one_paragraph(err)
    assert "--set dataset.root=DIR" in err
    assert "root=" not in err.replace("dataset.root=", "")
    assert not out.exists()


def test_harmonizer_option_it_does_not_take(cli_args, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(cli_args(out, "harmonizer.name=gh", "harmonizer.options={t: 0.5}")) == 2
    err = capsys.readouterr().err
    _one_paragraph(err)
    assert ("harmonizer.options.t: harmonizer 'gh' has no option 't'; its options: outside. "
            "'t' is an option of ghpp, ghpp_exact.") in err
    assert "'mode'" not in err
    assert not out.exists()


def test_ctrl_c_says_how_to_resume(cli_args, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ghuda", "train", "--no-progress",
           *cli_args(out, "train.steps=100000", "train.eval_every=5", "train.checkpoint_every=5")]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)  # a loaded 2-core machine can be slow to unwind
    assert proc.returncode == EXIT_INTERRUPTED
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("ghuda train: interrupted. Run the same command again to resume")
    assert str(out / "checkpoint.pt") in last
    assert not (out / "metrics.json").exists()


def test_data_info_says_get_it_only_when_missing(digits_mini_root, tmp_path):
    from ghuda.data.info import describe

    present = describe("digits-mini", digits_mini_root)
    assert "present at" in present
    assert "get it:" not in present
    missing = describe("digits-mini", tmp_path)
    assert "missing at" in missing
    assert "get it: ghuda data build digits-mini" in missing


def test_default_data_root_follows_the_working_directory(tmp_path, monkeypatch):
    from ghuda.data.paths import CHECKOUT_MARKER, data_root

    monkeypatch.delenv("GHUDA_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert data_root() == tmp_path / "data"
    checkout = tmp_path / "clone"
    (checkout / CHECKOUT_MARKER).parent.mkdir(parents=True)
    (checkout / CHECKOUT_MARKER).write_text("{}\n")
    (checkout / "runs").mkdir()
    monkeypatch.chdir(checkout / "runs")
    assert data_root() == checkout / "data"


def test_unwritable_run_folder(cli_args, capsys):
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc (a folder where nothing can be created)")
    assert main(cli_args(Path("/proc/ghuda_run"))) == EXIT_FOLDER
    err = capsys.readouterr().err
    _one_paragraph(err)
    assert "cannot write the run folder /proc/ghuda_run" in err
