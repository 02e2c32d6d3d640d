"""`agr_sum`: Agr-Sum gradient surgery (Mansilla et al., ICCV 2021; REFERENCE 2).

Coordinates where g1 and g2 have strictly opposite signs are zeroed; every other coordinate gets
the plain sum. h1 and h2 are g1 and g2 with the conflicting coordinates zeroed. Element-wise:
no weighted-loss form, ``w1 = w2 = None``; parameters outside the measure scope get g1 + g2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ghuda.harmonize.elementwise import ElementwiseHarmonizer
from ghuda.harmonize.registry import register


@register("agr_sum")
class AgrSum(ElementwiseHarmonizer):
    def fill(self, conflict: Tensor, dtype: torch.dtype, totals: Sequence[float]) -> None:
        return None
