"""One torch intra-op thread in every extension test (small models; the machine's cores are
shared), restored afterwards; a way to interrupt an extension run in its middle."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from resume_cases import Interrupted

from ghuda.extensions import loop


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def interrupt_at(monkeypatch) -> Callable[[int], None]:
    """``interrupt_at(i)``: the next extension run raises Interrupted at iteration i
    (0-based), once; later runs go through."""
    def arm(iteration: int) -> None:
        real = loop.run_stage

        def stage(parts: Any, stage: Any, i: int, log: bool) -> Any:
            if i == iteration:
                monkeypatch.setattr(loop, "run_stage", real)
                raise Interrupted
            return real(parts, stage, i, log)

        monkeypatch.setattr(loop, "run_stage", stage)
    return arm
