"""One DANN-style training step under each harmonizer, for timing (REFERENCE 1.4).

A backbone, a linear classifier and a discriminator behind a gradient reversal layer; a batch
of source and one of target images. One step: forward of both batches, the two losses
(transfer first, classification second), the harmonizer's backward with the measure scope
"everything but the discriminator", optimizer step. The `floor` configuration is no
harmonizer: two ``torch.autograd.grad`` calls and their plain sum written to ``.grad`` with one
foreach add, the least any two-pass harmonizer can cost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from benchlib.timing import sync


@dataclass(frozen=True)
class StepConfig:
    """A harmonizer with its options and whether it logs statistics; no harmonizer (None) is
    the two-pass floor."""

    harmonizer: str | None
    options: Mapping[str, Any] = field(default_factory=dict)
    with_stats: bool = False


FLOOR = StepConfig(None)


def two_pass_harmonizers() -> list[str]:
    """Registered harmonizers that take the two task gradients of the step and nothing else
    (one extra backward, no extra forward), in registry order."""
    import ghuda.harmonize as H

    return [name for name in H.names()
            if H.REGISTRY.get(name).extra_backward == 1
            and H.REGISTRY.get(name).extra_forward == 0]


def backward_passes(config: StepConfig) -> int:
    """Backward passes of a step: 1 for the plain sum without statistics, 3 for the released
    weighted-loss form, 2 otherwise (the floor included)."""
    if config.options.get("mode") == "weighted_loss":
        return 3
    return 1 if config.harmonizer == "sum" and not config.with_stats else 2


@dataclass(frozen=True)
class StepModel:
    """The network of the step: `build` returns a backbone and its feature dimension (called
    after seeding); images of `image` pixels, `classes` classes, a discriminator of width
    `hidden`."""

    build: Callable[[], tuple[nn.Module, int]]
    image: int
    classes: int
    hidden: int


class DannStep:
    """The model, a fixed batch, the optimizer and one step per configuration label.

    `bf16`: bf16 autocast with channels-last modules and images. Seeds 0 (weights) and 1
    (data), so every instance of a model starts from the same state.
    """

    def __init__(self, model: StepModel, batch: int, device: torch.device | str,
                 configs: Mapping[str, StepConfig],
                 optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
                 bf16: bool = False) -> None:
        import ghuda.harmonize as H
        from ghuda.models.heads import discriminator

        torch.manual_seed(0)
        self.backbone, dim = model.build()
        self.classifier = nn.Linear(dim, model.classes)
        self.disc = discriminator(dim, hidden=model.hidden)
        modules = nn.ModuleList([self.backbone, self.classifier, self.disc]).to(device)
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn(2 * batch, 3, model.image, model.image, generator=gen).to(device)
        if bf16:
            modules.to(memory_format=torch.channels_last)
            self.x = self.x.to(memory_format=torch.channels_last)
        self.y = torch.randint(0, model.classes, (batch,), generator=gen).to(device)
        self.domain = torch.cat([torch.ones(batch), torch.zeros(batch)]).to(device)
        self.batch, self.device, self.bf16 = batch, torch.device(device), bf16
        self.params = list(modules.parameters())
        self.measure = [*self.backbone.parameters(), *self.classifier.parameters()]
        self.optimizer = optimizer(self.params)
        self.configs = dict(configs)
        self.harmonizers = {label: H.make(c.harmonizer, **c.options)
                            for label, c in self.configs.items() if c.harmonizer is not None}

    def losses(self) -> tuple[Tensor, Tensor]:
        """(transfer loss, classification loss) of the fixed batch, in float32."""
        from ghuda.models.heads import reverse_gradient

        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            features = self.backbone(self.x)
            cls = nn.functional.cross_entropy(self.classifier(features[:self.batch]), self.y)
            logits = self.disc(reverse_gradient(features, 1.0)).squeeze(1)
            transfer = nn.functional.binary_cross_entropy_with_logits(logits.float(),
                                                                      self.domain)
        return transfer, cls.float()

    def step(self, label: str) -> None:
        """One training step of configuration `label`, synchronised."""
        for p in self.params:
            p.grad = None
        transfer, cls = self.losses()
        if label in self.harmonizers:
            self.harmonizers[label].backward(transfer, cls, self.params, self.measure,
                                             with_stats=self.configs[label].with_stats)
        else:
            self.floor(transfer, cls)
        self.optimizer.step()
        sync(self.device)

    def floor(self, loss1: Tensor, loss2: Tensor) -> None:
        """Two autograd.grad calls, their plain sum written to ``.grad`` (one foreach add)."""
        grads = [torch.autograd.grad(loss, self.params, retain_graph=k == 0, allow_unused=True)
                 for k, loss in enumerate((loss1, loss2))]
        filled = [[torch.zeros_like(p) if g is None else g
                   for g, p in zip(gk, self.params, strict=True)] for gk in grads]
        for p, total in zip(self.params, torch._foreach_add(*filled), strict=True):
            p.grad = total
