"""Peak memory of the training phase, labelled by what was measured (``peak_mem_kind``).

* CUDA: ``torch.cuda.max_memory_allocated`` since the start of training
  (``cuda_max_allocated``: tensors only, not the caching allocator's reserve).
* CPU on Linux: the peak resident set size of the WHOLE process (``VmHWM``), reset at the
  start of training through ``/proc/self/clear_refs``, minus the resident size at that moment
  (``cpu_rss_delta``: what training added on top of the loaded process: activations,
  gradients, optimizer state). ``peak_rss_mb`` reports the whole-process peak as well.
  Where the peak cannot be reset, the kind is ``cpu_peak_rss_process`` (whole process since
  its start). Before the baseline is read, memory the process has freed is returned to the
  operating system (`release_free_memory`): a process that trains several runs
  (``ghuda train-batch``) would otherwise serve a later run from the heap an earlier one freed,
  and that run's delta would read 0.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
import sys
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")


def _status_mb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        return None
    return None


def release_free_memory() -> bool:
    """Collect garbage and hand the C heap's free pages back to the OS (glibc
    ``malloc_trim(0)``); False where the C library has no ``malloc_trim`` (not glibc)."""
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True


class PeakMemory:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline_mb = 0.0
        self.reset_ok = False

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        release_free_memory()
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.reset_ok = True
        except OSError:
            self.reset_ok = False
        self.baseline_mb = _status_mb("VmRSS") or 0.0

    def report(self) -> dict[str, float | str | None]:
        """{"peak_mem_mb", "peak_mem_kind", "peak_rss_mb"}."""
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            return {"peak_mem_mb": peak, "peak_mem_kind": "cuda_max_allocated",
                    "peak_rss_mb": _status_mb("VmHWM")}
        hwm = _status_mb("VmHWM")
        if hwm is None:  # not Linux: ru_maxrss is kB on Linux, bytes on macOS
            scale = 1.0 if sys.platform == "darwin" else 1024.0
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
        if self.reset_ok:
            return {"peak_mem_mb": max(hwm - self.baseline_mb, 0.0),
                    "peak_mem_kind": "cpu_rss_delta", "peak_rss_mb": hwm}
        return {"peak_mem_mb": hwm, "peak_mem_kind": "cpu_peak_rss_process",
                "peak_rss_mb": hwm}
