"""Timing helpers: device synchronisation, round-robin order, quartiles."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch


def sync(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA only), so that a wall clock sees it."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rotation(labels: Sequence[str], r: int) -> list[str]:
    """`labels` started at round `r`'s place (round robin, rotating start): load drift on a
    shared machine then hits every configuration alike."""
    k = r % len(labels)
    return [*labels[k:], *labels[:k]]


def quartiles(times: list[float]) -> tuple[float, float, float]:
    """(median, first quartile, third quartile); a single time is all three."""
    if len(times) < 2:
        return times[0], times[0], times[0]
    q1, _, q3 = statistics.quantiles(times, n=4)
    return statistics.median(times), q1, q3
