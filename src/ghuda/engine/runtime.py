"""Device, precision, threads, seeds, determinism and RNG-state capture for a run."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.utils.deterministic

from ghuda.config import ConfigError


@dataclass(frozen=True)
class Runtime:
    """Where and how a run computes: device, autocast dtype (None: full precision), threads."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    threads: int

    @property
    def loss_scaling(self) -> bool:
        """float16 autocast needs a loss scaler; bfloat16 and float32 do not."""
        return self.amp_dtype == torch.float16

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def describe(self) -> str:
        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        return "cpu"


def make_runtime(train: dict[str, Any]) -> Runtime:
    """Resolve ``train.device``, ``train.amp``, ``train.amp_dtype``, ``train.threads`` and
    ``train.deterministic``.

    ``device: auto`` picks CUDA when available. Mixed precision (``amp: auto``) is on for CUDA
    only: bfloat16 where the GPU supports it (no loss scaling needed), float16 otherwise.
    CNN backbones use channels-last memory on CUDA. On the CPU every run is deterministic
    (`torch.use_deterministic_algorithms`); on CUDA cuDNN autotuning is on and runs are not
    bitwise reproducible unless ``deterministic: true`` (`deterministic_cuda`).
    """
    if train["threads"] is not None:
        torch.set_num_threads(train["threads"])
    name = train["device"]
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} requested but this machine has no CUDA "
                          "GPU (torch.cuda.is_available() is false); allowed values here: "
                          "auto, cpu. Use --set train.device=cpu (or auto).")
    device = torch.device(name)
    if device.type == "cpu":
        _deterministic_cpu()
    elif train["deterministic"]:  # before anything starts cuBLAS
        deterministic_cuda()
    else:  # also undoes an earlier deterministic run of this process
        torch.backends.cudnn.deterministic = False
        _deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True
    amp = train["amp"]
    use_amp = device.type == "cuda" if amp == "auto" else bool(amp)
    dtype: torch.dtype | None = None
    if use_amp:
        if device.type != "cuda":
            raise ConfigError("train.amp: mixed precision needs CUDA; allowed on this "
                              "device: auto, false. Use --set train.amp=auto.")
        wanted = train["amp_dtype"]
        if wanted == "auto":
            wanted = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        dtype = getattr(torch, wanted)
    return Runtime(device=device, amp_dtype=dtype, channels_last=device.type == "cuda",
                   threads=torch.get_num_threads())


def _deterministic_algorithms(on: bool) -> None:
    """`torch.use_deterministic_algorithms(on, warn_only=True)` without its import cost.

    The public function also configures torch.compile's inductor, importing torch._dynamo
    (about a second per run, a large share of a digits-mini run); nothing here compiles, so
    only the flag itself is set when the private setter exists.
    """
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(on, warn_only=True)
    else:
        setter(on, warn_only=True)


def _deterministic_cpu() -> None:
    """Deterministic algorithms on the CPU (`_deterministic_algorithms`).

    Deterministic mode also fills every new uninitialised tensor with NaN (a debugging aid
    that costs about 5% of a digits-mini step); correct code never reads such memory, so that
    fill is switched off.
    """
    _deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]


def deterministic_cuda() -> None:
    """Deterministic CUDA: cuBLAS with a fixed workspace (``CUBLAS_WORKSPACE_CONFIG=:4096:8``,
    read when cuBLAS first starts, so set before any CUDA matrix product), cuDNN without
    autotuning and with deterministic algorithms only, `torch.use_deterministic_algorithms`.

    ``warn_only=True``: an op without a deterministic CUDA kernel warns instead of stopping
    the run (the warning names it).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    _deterministic_algorithms(True)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's (CPU and CUDA) global generators.

    The global numpy generator is seeded (and checkpointed) on purpose: method or library code
    may draw from it.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """All global RNG states, for checkpoints."""
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),  # noqa: NPY002
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
