"""The harmonizer interface `Harmonizer` and the contract of its `backward`.

A harmonizer turns the gradients g1 = grad L1 and g2 = grad L2 (REFERENCE 1.1) into one update.
Two families exist:

* vector harmonizers (sum, gh, ghpp, ghpp_exact, pcgrad) are linear in (g1, g2) with scalar
  coefficients that depend only on d = <g1, g2>, |g1|^2 and |g2|^2:
  ``h1 = a11 g1 + a12 g2``, ``h2 = a21 g1 + a22 g2``, ``update = h1 + h2 = w1 g1 + w2 g2``.
  The coefficients are float64 tensors computed on the device (fallbacks selected with
  ``torch.where``), and `backward` works on two flat rows (`ghuda.harmonize.vector`,
  `ghuda.harmonize.flat`): its number of kernels does not grow with the number of parameter
  tensors, and without statistics it reads nothing back to the host. They also offer
  ``mode="weighted_loss"``, the released three-pass procedure (REFERENCE 1.4);
* element-wise harmonizers (agr_sum, agr_rand; REFERENCE 2) decide coordinate by coordinate
  from the signs of g1 and g2 (`ghuda.harmonize.elementwise`); they have no weighted-loss
  form and report ``w1 = w2 = None``.

`backward` semantics shared by both families:

* it ACCUMULATES into ``.grad`` like ``loss.backward()`` (zero the gradients first), so several
  pairs can be harmonized into the same parameters; a parameter reached by neither loss keeps
  its ``.grad`` untouched (as ``loss.backward()`` would), so optimizers skip it;
* `measure` (default `params`) is the scope on which the angle, weights and element-wise
  statistics are computed. Measure tensors that are not in `params` serve the statistics only
  (their ``.grad`` is not written). Parameters outside `measure` receive ``w1*g1 + w2*g2`` of
  their own gradients (vector harmonizers with ``outside="sum"``, and element-wise ones: the
  plain sum ``g1 + g2``);
* `scales` = (s1, s2) are constant loss weights applied AFTER harmonization (how the released
  code applies CDAN/GVB's trade-off, REFERENCE 1.4): vector harmonizers write
  ``s1*w1*g1 + s2*w2*g2`` with (w1, w2) computed on the unscaled gradients; element-wise ones
  write ``s1*h1 + s2*h2``. Statistics report the unscaled w1, w2 and the norm of the update
  actually written;
* cost: exactly two backward passes in "direct" mode, three in "weighted_loss" mode.

Degenerate cases (documented fallbacks, reported in the ``fallback`` statistic):

* ``"zero_gradient"``: a gradient is exactly zero on the measure scope; the angle is undefined
  and every harmonizer returns the plain sum (which is then the other gradient);
* ``"antiparallel"``: `ghpp_exact` only (see there); GH and PCGrad have an exact, finite limit;
* ``"weighted_loss_overflow"``: in weighted-loss mode, a weighted loss would overflow its dtype
  (weights beyond ~1e38 when the two norms differ by ~1e20); the already computed gradients are
  then written directly, which gives the same update;
* ``"no_agreeing_coordinate"``: `agr_rand` only (see there);
* non-finite gradients (inf/NaN) raise `NonFiniteGradientError` naming the loss, whenever
  statistics are computed (``with_stats=True``, the default, and every element-wise or
  weighted-loss step). A vector harmonizer's direct step without statistics reads nothing
  back to check: the non-finite values reach ``.grad`` (a float16 loss scaler then skips the
  step; otherwise the next loss is non-finite and the engine stops there).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from torch import Tensor

from ghuda.harmonize.types import BackwardCall, Harmonized, Stats, StepContext, check_scales

MODES = ("direct", "weighted_loss")


class Harmonizer(ABC):
    """Common interface of every harmonizer (`ghuda.harmonize.make` builds one).

    Options are keyword arguments validated by `__init__`; `mode` is "direct" (two backward
    passes, gradients written to ``.grad``) or "weighted_loss" (the released three-pass
    procedure: both gradients, then ``(w1*L1 + w2*L2).backward()``, REFERENCE 1.4).
    Harmonizers that own their step (look-ahead methods) subclass this directly.
    """

    name: ClassVar[str] = ""
    elementwise: ClassVar[bool] = False
    # Extra passes per harmonized step beyond one forward and one backward (cost accounting);
    # instances in weighted_loss mode report extra_backward = 2.
    extra_forward: ClassVar[int] = 0
    extra_backward: ClassVar[int] = 1
    # False for harmonizers without a form on two flat gradients (MetaAlign: its update
    # needs the losses at look-ahead weights, from `StepContext`); their `harmonize` raises.
    flat_form: ClassVar[bool] = True
    # True when the update is w1 g1 + w2 g2 with loss weights that are a function of the
    # pair's angle and norms (GH, GH++): the weights-vs-angle figures draw its curve
    # (`ghuda.report.figures.weight_curves`, `curve_harmonizers`).
    weight_curve: ClassVar[bool] = False

    def __init__(self, mode: str = "direct") -> None:
        if mode not in MODES:
            raise ValueError(f"harmonizer {self.name!r}: mode must be one of {MODES}, "
                             f"got {mode!r}")
        if mode == "weighted_loss" and self.elementwise:
            raise ValueError(f"harmonizer {self.name!r} is element-wise and has no "
                             "weighted-loss form; use mode='direct'")
        self.mode = mode
        if mode == "weighted_loss":
            self.extra_backward = 2

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, mode={self.mode!r})"

    # ---- state, for checkpoints (harmonizers with random generators override) ----
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"harmonizer {self.name!r} has no state, got keys {sorted(state)}")

    @abstractmethod
    def harmonize(self, g1: Tensor, g2: Tensor) -> Harmonized:
        """Harmonize two flat gradients."""

    def backward(self, loss1: Tensor, loss2: Tensor, params: Iterable[Tensor],
                 measure: Iterable[Tensor] | None = None, *, retain_graph: bool = False,
                 with_stats: bool = True, scales: Sequence[float] = (1.0, 1.0),
                 context: StepContext | None = None) -> Stats:
        """Accumulate the harmonized gradient of (loss1, loss2) into ``.grad`` of `params`.

        `context` describes the step the pair belongs to (`StepContext`); harmonizers that
        own their step (MetaAlign) need it, the others ignore it. Returns the pair
        statistics: cos, angle_deg, conflict, w1, w2, norm1, norm2, norm_update (all on the
        measure scope) and fallback; a vector harmonizer's direct step with
        ``with_stats=False`` returns ``{}`` (it reads nothing back to the host). Checks
        `scales`, then hands the call to `accumulate`.
        """
        return self.accumulate(BackwardCall(loss1, loss2, params, measure, retain_graph,
                                            with_stats, check_scales(scales), context))

    @abstractmethod
    def accumulate(self, call: BackwardCall) -> Stats:
        """`backward`'s work, on its arguments bundled as one `BackwardCall`."""
