"""The gradient-reversal schedule of the released adversarial methods (REFERENCE 1.5).

The coefficient follows ``grl_coefficient`` (``ghuda.models.heads``); the released
discriminator counts its calls from 1.
"""

from __future__ import annotations

from ghuda.methods.base import StepInfo
from ghuda.models.heads import grl_coefficient


def grl_coeff(info: StepInfo, max_iter: float | None, counter: str = "zero") -> float:
    """Released reversal coefficient at this step; `max_iter` None uses the run length.

    ``counter="released"``: the coefficient of step + 1, as the released discriminator, which
    increments its call counter before using it (cdan/network.py ~404-407); ``"zero"``: of
    step (the released entropy hook, cdan/train_image.py ~219).
    """
    step = info.step + (1 if counter == "released" else 0)
    return grl_coefficient(step, max_iter=float(max_iter or info.total_steps))
