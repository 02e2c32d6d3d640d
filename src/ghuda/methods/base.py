"""The contract between UDA methods and the training engine.

A method owns its networks (backbone plus heads), declares its parameter groups, and for each
training iteration yields one or more `Stage`s. A stage holds named losses computed from one
forward pass, the parameter groups it updates, and the loss pairs to harmonize (REFERENCE
1.4). The engine backpropagates each stage — harmonized pairs through the configured
harmonizer, every other loss as a plain sum — and steps the named groups' optimizers before
asking the method for its next stage, so a multi-step method (MCD's steps A/B/C) computes each
stage's forward pass with the weights the previous stage left.

Methods never see target labels: `Batch` carries none. A method that keeps per-sample target
state (CGDM's pseudo-labels) sets `refresh_every`; the engine then calls `Method.refresh` with
every target training IMAGE (never a label) and passes the batch's target indices.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn

from ghuda.methods.release import Release


@dataclass(frozen=True)
class Batch:
    """One training iteration's data: labelled source, unlabelled target.

    `idx_tgt` (set by the engine) holds the target rows' indices in the target training set,
    the order in which `Method.refresh` sees the images.
    """

    x_src: Tensor
    y_src: Tensor
    x_tgt: Tensor
    idx_tgt: Tensor | None = None


@dataclass(frozen=True)
class StepInfo:
    """Where training is: `step` counts from 0 to `total_steps - 1`."""

    step: int
    total_steps: int

    @property
    def progress(self) -> float:
        return self.step / max(self.total_steps, 1)


@dataclass(frozen=True)
class Pair:
    """Two losses whose gradients are harmonized, in the released order (REFERENCE 1.4).

    `measure` names the parameter groups on which the angle and weights are computed.
    `scales` are constant loss weights applied after harmonization: the update is
    ``scales[0]*w1*g1 + scales[1]*w2*g2`` with (w1, w2) computed on the unscaled g1, g2 — how
    the released code applies CDAN/GVB's trade-off and DWL's T (REFERENCE 1.4).
    """

    first: str
    second: str
    measure: tuple[str, ...]
    scales: tuple[float, float] = (1.0, 1.0)


@dataclass
class Stage:
    """One optimisation step of an iteration.

    `losses` are all backpropagated once: those named in `pairs` through the harmonizer, the
    others summed plainly. Only the groups in `step` are updated. `reevaluate`, when given,
    recomputes the same losses with parameters substituted by name (``torch.func``-style
    mapping from `Method.named_parameters()` names to tensors); harmonizers that look ahead
    (MetaAlign) need it. `monitor` holds detached scalars that explain the step but are not
    losses (e.g. the gradient-reversal coefficient, the discriminator's accuracy on the batch;
    issue 22); the engine writes them to the history at logged steps.
    """

    name: str
    losses: dict[str, Tensor]
    step: tuple[str, ...]
    pairs: tuple[Pair, ...] = ()
    reevaluate: Callable[[Mapping[str, Tensor]], dict[str, Tensor]] | None = field(
        default=None, repr=False)
    monitor: dict[str, Tensor | float] = field(default_factory=dict, repr=False)


class Method(nn.Module, ABC):
    """Base class of UDA methods; subclasses register with `ghuda.methods.register`.

    Subclasses set `name` (by registration), may set `requires_backbone` (e.g. "vit"), and
    implement `param_groups`, `stages` and `predict`. Constructor keyword defaults are the
    released hyper-parameters; `RELEASE` records the rest of the release (`release.Release`).
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # display name in tables and figures; default: `name`
    requires_backbone: ClassVar[str | None] = None
    RELEASE: ClassVar[Release] = Release()
    # > 0: the engine calls `refresh` before iterations 0, k, 2k, ... (k = refresh_every)
    refresh_every: int = 0

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.num_classes = num_classes

    @abstractmethod
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Disjoint named parameter groups covering every trainable parameter."""

    def lr_multipliers(self) -> dict[str, float]:
        """Learning-rate multiplier per group: 1 for the backbone, 10 for new layers (1.5)."""
        return {g: (1.0 if g == "backbone" else 10.0) for g in self.param_groups()}

    def optimizer_overrides(self) -> dict[str, dict[str, Any]]:
        """Per-group changes of the ``train`` optimizer settings: ``momentum``, ``nesterov``
        and ``decay_mult`` (weight decay = ``train.weight_decay * decay_mult``). Default none."""
        return {}

    @classmethod
    def train_crop(cls, params: dict[str, Any], domain: str) -> str:
        """Training crop kind for images of `domain` (`ghuda.data.transforms.CROPS`) under
        the hyper-parameters `params`; default RandomResizedCrop."""
        return "random_resized_crop"

    @classmethod
    def dataset_crop(cls, params: dict[str, Any], dataset: str, domain: str) -> str:
        """Training crop for images of `domain` of registered dataset `dataset`; default
        `train_crop` (MCD's release crops VisDA-2017 differently)."""
        return cls.train_crop(params, domain)

    @abstractmethod
    def stages(self, batch: Batch, info: StepInfo) -> Iterator[Stage]:
        """Yield the stages of one training iteration, in order."""

    @abstractmethod
    def predict(self, x: Tensor) -> Tensor:
        """Class logits used for evaluation."""

    def features(self, x: Tensor) -> Tensor:
        """Features for visualisation (t-SNE); the backbone output by default."""
        return self.backbone(x)

    def oracle_heads(self, x: Tensor) -> dict[str, Tensor] | None:
        """Class logits of each predictor the RELEASED oracle chooses among (MCD's two heads,
        DWL's five predictors), or None (default): the oracle then selects on `predict` like
        every other protocol. When given, the engine records each predictor's target accuracy
        at every evaluation and the ``oracle`` protocol takes the best (evaluation, predictor)
        on target labels, as the release did (REFERENCE 1.6; `ghuda.engine.evaluate`)."""
        return None

    def refresh(self, target_images: Iterable[Tensor], info: StepInfo) -> None:
        """Recompute per-sample target state (e.g. pseudo-labels) from the whole target set.

        Called by the engine when ``refresh_every > 0`` and ``info.step % refresh_every == 0``,
        before that iteration's stages, with the method in eval mode and gradients off.
        `target_images` yields the target training images in dataset order (the indices of
        `Batch.idx_tgt`), on the training device, in batches; no labels. Default: nothing.
        """
