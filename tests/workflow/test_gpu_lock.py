"""workflow/scripts/gpu_lock.py gives concurrent jobs distinct GPUs (no GPU needed)."""

from __future__ import annotations

import os
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


def _start_slots(lock_dir, hold: float, devices: str, slots: int | None, env_slots=None):
    env = dict(os.environ)
    env.pop("GHUDA_GPU_SLOTS", None)
    if env_slots is not None:
        env["GHUDA_GPU_SLOTS"] = str(env_slots)
    extra = [] if slots is None else ["--slots", str(slots)]
    return subprocess.Popen(
        [sys.executable, SCRIPT, "--devices", devices, "--lock-dir", str(lock_dir), *extra,
         "--", sys.executable, "-c", HOLD.format(hold)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_slots_let_several_jobs_share_a_gpu_and_the_next_waits(tmp_path):
    jobs = [_start_slots(tmp_path, 1.5, "3", 2) for _ in range(2)]
    assert [j.stdout.readline().strip() for j in jobs] == ["3", "3"]
    start = time.monotonic()
    third = _start_slots(tmp_path, 0.0, "3", 2)
    assert third.stdout.readline().strip() == "3"
    assert time.monotonic() - start > 0.5  # both slots were held
    for proc in (*jobs, third):
        assert proc.wait(timeout=30) == 0


def test_slots_spread_jobs_over_gpus_before_sharing(tmp_path):
    jobs = [_start_slots(tmp_path, 1.5, "3,5", None, env_slots=2) for _ in range(2)]
    assert {j.stdout.readline().strip() for j in jobs} == {"3", "5"}
    third = _start_slots(tmp_path, 0.0, "3,5", None, env_slots=2)
    assert third.stdout.readline().strip() in {"3", "5"}  # a second slot, without waiting
    for proc in (*jobs, third):
        assert proc.wait(timeout=30) == 0


def test_bad_slot_count_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, SCRIPT, "--slots", "0", "--devices", "0",
                           "--lock-dir", str(tmp_path), "--", "true"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "slots must be >= 1" in proc.stderr
