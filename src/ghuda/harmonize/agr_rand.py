"""`agr_rand`: Agr-Rand gradient surgery (Mansilla et al., ICCV 2021; REFERENCE 2).

Like Agr-Sum, but each coordinate where g1 and g2 have strictly opposite signs is filled with
Gaussian noise ``scale * N(0, 1)``, where `scale` is the mean magnitude of the kept update,
``mean |g1 + g2|`` over the agreeing coordinates of the measure scope whose sum is nonzero.
The noise is split equally between h1 and h2 (``update = h1 + h2``).

Randomness: a `torch.Generator` per device, seeded with option `seed` (default 0). Noise is
drawn as one ``torch.randn(shape)`` per measure tensor, in measure order, whether or not the
tensor has conflicting coordinates, so the stream does not depend on the data. `state_dict`
holds the generators' states, so a resumed run draws exactly the same noise.

Fallback ("no_agreeing_coordinate"): when every nonzero coordinate conflicts, the scale (a mean
over no coordinates; NaN in the authors' code) is taken as 0, i.e. the Agr-Sum update.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ghuda.harmonize.elementwise import ElementwiseHarmonizer
from ghuda.harmonize.registry import register


@register("agr_rand")
class AgrRand(ElementwiseHarmonizer):
    def __init__(self, seed: int = 0, mode: str = "direct") -> None:
        super().__init__(mode=mode)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ValueError(f"harmonizer {self.name!r}: seed must be an integer in "
                             f"[0, 2**63), got {seed!r}")
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, seed={self.seed})"

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed,
                "generators": {k: g.get_state() for k, g in self._generators.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"seed", "generators"}:
            raise ValueError(f"harmonizer {self.name!r}: state must have keys "
                             f"['generators', 'seed'], got {sorted(state)}")
        self.seed = int(state["seed"])
        self._generators = {}
        for key, gen_state in state["generators"].items():
            self._generator(torch.device(key)).set_state(gen_state)

    def reduce(self, agree_sum: Tensor, conflict: Tensor) -> Tensor:
        """[sum |kept|, number kept (nonzero agreeing), number conflicting], float64."""
        magnitude = agree_sum.abs()
        return torch.stack([magnitude.sum(dtype=torch.float64),
                            (magnitude > 0).sum().double(),
                            conflict.sum().double()])

    def fill(self, conflict: Tensor, dtype: torch.dtype, totals: Sequence[float]) -> Tensor:
        kept_abs, kept, _ = totals
        scale = kept_abs / kept if kept > 0 else 0.0
        noise = torch.randn(conflict.shape, generator=self._generator(conflict.device),
                            dtype=dtype, device=conflict.device)
        return noise.mul_(scale)

    def fallback(self, totals: Sequence[float]) -> str | None:
        _, kept, conflicting = totals
        return "no_agreeing_coordinate" if kept == 0 and conflicting > 0 else None
