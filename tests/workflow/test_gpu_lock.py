"""workflow/scripts/gpu_lock.py gives concurrent jobs distinct GPUs (no GPU needed)."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import REPO

SCRIPT = str(REPO / "workflow" / "scripts" / "gpu_lock.py")
# the child prints the GPU it got, then holds it for a while
HOLD = "import os, time; print(os.environ['CUDA_VISIBLE_DEVICES'], flush=True); time.sleep({})"


def _start(lock_dir, hold: float, gpus: int = 1, devices: str = "3,5"):
    return subprocess.Popen(
        [sys.executable, SCRIPT, "--gpus", str(gpus), "--devices", devices, "--lock-dir",
         str(lock_dir), "--", sys.executable, "-c", HOLD.format(hold)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_jobs_get_distinct_gpus_and_a_third_waits(tmp_path):
    first, second = _start(tmp_path, 1.5), _start(tmp_path, 1.5)
    got = {first.stdout.readline().strip(), second.stdout.readline().strip()}
    assert got == {"3", "5"}
    start = time.monotonic()
    third = _start(tmp_path, 0.0)
    assert third.stdout.readline().strip() in {"3", "5"}
    assert time.monotonic() - start > 0.5  # it could only start once a GPU was released
    for proc in (first, second, third):
        assert proc.wait(timeout=30) == 0


def test_lock_is_released_when_the_command_fails(tmp_path):
    fail = subprocess.run([sys.executable, SCRIPT, "--devices", "0", "--lock-dir",
                           str(tmp_path), "--", sys.executable, "-c", "raise SystemExit(7)"],
                          capture_output=True, text=True, check=False)
    assert fail.returncode == 7  # the command's own status
    again = subprocess.run([sys.executable, SCRIPT, "--devices", "0", "--lock-dir",
                            str(tmp_path), "--timeout", "2", "--", sys.executable, "-c", "0"],
                           capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr


def test_too_few_gpus_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, SCRIPT, "--gpus", "2", "--devices", "0",
                           "--lock-dir", str(tmp_path), "--", "true"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "needs 2 GPU(s) but only ['0']" in proc.stderr
