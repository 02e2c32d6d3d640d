"""Run a command on GPUs no other job of this machine holds (profile gpu-local).

    python workflow/scripts/gpu_lock.py --gpus 1 [--slots 2] -- ghuda train --config ...

Snakemake limits how many GPU jobs run at once (`--resources gpu=N`) but does not say which
GPU a job may use. This wrapper takes an exclusive, non-blocking `flock` on one lock file per
device (in $GHUDA_GPU_LOCK_DIR, default /tmp/ghuda-gpu-locks-<uid>), retries until it holds
`--gpus` of them, exports CUDA_VISIBLE_DEVICES to those devices and replaces itself with the
command; the lock descriptors are inherited, so the locks are held exactly as long as the
command (and its children) run, and the kernel releases them if it crashes.

Slots: with `--slots S` (else $GHUDA_GPU_SLOTS, else 1) each GPU holds up to S jobs at once
(one lock file per device and slot), for grids of small runs that leave a GPU mostly idle
(digits-mini: about 7 ms per step, launch-bound). A job takes one slot on each of `--gpus`
distinct devices, filling the first slot of every device before a second slot of any, so
jobs spread over the GPUs before they share one. Every job of a machine must use the same S.

Devices: --devices, else $GHUDA_GPUS, else $CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path


def _devices(explicit: str | None) -> list[str]:
    for value in (explicit, os.environ.get("GHUDA_GPUS"), os.environ.get("CUDA_VISIBLE_DEVICES")):
        if value:
            return [d.strip() for d in value.split(",") if d.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _lock_file(lock_dir: Path, device: str, slot: int, slots: int) -> Path:
    """One file per device and slot (with one slot: the historical name gpu<dev>.lock)."""
    return lock_dir / (f"gpu{device}.lock" if slots == 1 else f"gpu{device}.slot{slot}.lock")


def acquire(devices: list[str], count: int, lock_dir: Path, timeout: float,
            poll: float = 0.5, slots: int = 1) -> tuple[list[str], list[int]]:
    """Lock one slot on each of `count` distinct `devices`; returns (device ids, open lock
    descriptors)."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        held: dict[str, int] = {}
        for slot in range(slots):
            for dev in devices:
                if dev in held:
                    continue
                fd = os.open(_lock_file(lock_dir, dev, slot, slots), os.O_CREAT | os.O_RDWR,
                             0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                held[dev] = fd
                if len(held) == count:
                    return list(held), list(held.values())
        for fd in held.values():
            os.close(fd)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {count} free GPU slot(s) among {devices} x {slots} "
                               f"slot(s) after {timeout:.0f} s (locks in {lock_dir})")
        time.sleep(poll)


def _slots(value: str) -> int:
    slots = int(value)
    if slots < 1:
        raise argparse.ArgumentTypeError(f"slots must be >= 1, got {value}")
    return slots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=1, help="GPUs the command needs")
    parser.add_argument("--devices", help="comma-separated device ids (default: see above)")
    parser.add_argument("--lock-dir", type=Path, default=Path(os.environ.get(
        "GHUDA_GPU_LOCK_DIR", f"/tmp/ghuda-gpu-locks-{os.getuid()}")))
    parser.add_argument("--slots", type=_slots, default=os.environ.get("GHUDA_GPU_SLOTS", "1"),
                        help="jobs per GPU at once (default $GHUDA_GPU_SLOTS, else 1)")
    parser.add_argument("--timeout", type=float, default=7 * 24 * 3600,
                        help="give up after this many seconds without free GPUs")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command ...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    devices = _devices(args.devices)
    if len(devices) < args.gpus:
        print(f"gpu_lock: the job needs {args.gpus} GPU(s) but only {devices or 'none'} are "
              "known; set GHUDA_GPUS or CUDA_VISIBLE_DEVICES", file=sys.stderr)
        return 2
    ids, fds = acquire(devices, args.gpus, args.lock_dir, args.timeout, slots=args.slots)
    for fd in fds:
        os.set_inheritable(fd, True)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
    print(f"gpu_lock: CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}",
          file=sys.stderr, flush=True)
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
