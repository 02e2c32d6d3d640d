"""Toy backbones, data and a minimal stage runner for the method tests.

Independent of the engine and of the project's backbones on purpose: the method contract
(`ghuda.methods.base`) is exercised directly. The runner follows the contract: zero the
gradients, backpropagate each harmonized pair through a harmonizer (measured on the pair's
groups, applied to the stepped groups, `Pair.scales` applied after harmonization), the other
losses as a plain sum, then step only the stage's groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from ghuda import harmonize, methods
from ghuda.methods.base import Batch, Method, Stage, StepInfo

IN_DIM, FEATURE_DIM, NUM_CLASSES = 8, 16, 3
# Cheap hyper-parameters so every test runs in milliseconds.
SMALL: dict[str, dict[str, Any]] = {
    "cdan": {"bottleneck_dim": 8, "random_dim": 32, "disc_hidden": 16},
    "gvb": {"disc_hidden": 16},
    "mcd": {"head_hidden": 16, "num_k": 2, "trade_off": 0.3},
    "dwl": {"hidden": 16, "num_k1": 2, "num_k3": 2, "window": 4},
    "ssrt": {"bottleneck_dim": 64, "safe_period": 16},
}
MINE = ("cdan", "gvb", "mcd", "dwl", "ssrt")


class Residual(nn.Module):
    """``x + tanh(W LN(x))``, per token."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        return x + self.f(x)


class ToyViT(nn.Module):
    """A ViT-shaped backbone (the `ViTBackbone` interface): 4 tokens of 2 inputs each plus a
    class token (their mean, since the per-token residual blocks do not mix tokens), pooled
    class token."""

    kind = "vit"

    def __init__(self, dim: int = FEATURE_DIM, depth: int = 4) -> None:
        super().__init__()
        self.proj = nn.Linear(IN_DIM // 4, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.Sequential(*(Residual(dim) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.feature_dim = dim

    def embed(self, x: Tensor) -> Tensor:
        tokens = self.proj(x.reshape(x.shape[0], 4, IN_DIM // 4))
        cls = self.cls_token + tokens.mean(dim=1, keepdim=True)  # blocks do not mix tokens
        return torch.cat((cls, tokens), dim=1)

    def pool(self, tokens: Tensor) -> Tensor:
        return self.norm(tokens)[:, 0]

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.blocks(self.embed(x)))


def mlp_backbone() -> nn.Module:
    net = nn.Sequential(nn.Linear(IN_DIM, FEATURE_DIM), nn.ReLU())
    net.feature_dim = FEATURE_DIM  # type: ignore[attr-defined]
    return net


def build(name: str, **hparams: Any) -> Method:
    """Method `name` on a toy backbone with the cheap `SMALL` settings (overridable)."""
    torch.manual_seed(0)
    backbone = ToyViT() if methods.get(name).requires_backbone == "vit" else mlp_backbone()
    return methods.build(name, backbone, FEATURE_DIM, NUM_CLASSES,
                         **{**SMALL.get(name, {}), **hparams})


def toy_batch(seed: int = 0, n: int = 12, shift: float = 0.5) -> Batch:
    """Separable classes (means along the first coordinates), target shifted by `shift`."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % NUM_CLASSES
    centres = 3.0 * torch.eye(NUM_CLASSES, IN_DIM)
    x_src = centres[y] + 0.3 * torch.randn(n, IN_DIM, generator=g)
    y_tgt = torch.randint(NUM_CLASSES, (n,), generator=g)
    x_tgt = centres[y_tgt] + shift + 0.3 * torch.randn(n, IN_DIM, generator=g)
    return Batch(x_src=x_src, y_src=y, x_tgt=x_tgt)


def optimizers(method: Method, lr: float = 0.01) -> dict[str, torch.optim.Optimizer]:
    mult = method.lr_multipliers()
    return {g: torch.optim.SGD(ps, lr=lr * mult[g], momentum=0.9)
            for g, ps in method.param_groups().items() if ps}


def params(method: Method, groups: Iterable[str]) -> list[nn.Parameter]:
    all_groups = method.param_groups()
    return [p for g in groups for p in all_groups[g]]


def run_stage(method: Method, stage: Stage, harmonizer: harmonize.Harmonizer,
              opts: dict[str, torch.optim.Optimizer], with_stats: bool = True) -> None:
    for p in method.parameters():
        p.grad = None
    stepped = params(method, stage.step)
    paired: set[str] = set()
    for pair in stage.pairs:
        harmonizer.backward(stage.losses[pair.first], stage.losses[pair.second], stepped,
                            params(method, pair.measure), retain_graph=True,
                            with_stats=with_stats, scales=pair.scales)
        paired |= {pair.first, pair.second}
    rest = [v for k, v in stage.losses.items() if k not in paired and v.requires_grad]
    if rest:
        torch.stack(rest).sum().backward(inputs=stepped)
    for g in stage.step:
        if g in opts:
            opts[g].step()


def train(method: Method, steps: int, harmonizer: str = "sum", total: int | None = None
          ) -> list[list[Stage]]:
    """Run `steps` iterations on fresh toy batches; returns each iteration's stages."""
    hz = harmonize.make(harmonizer)
    opts = optimizers(method)
    method.train()
    log = []
    for i in range(steps):
        stages = []
        for stage in method.stages(toy_batch(seed=i), StepInfo(i, total or steps)):
            stages.append(stage)
            run_stage(method, stage, hz, opts)
        log.append(stages)
    return log


def grads(method: Method, loss: Tensor) -> dict[str, float]:
    """Squared gradient norm of `loss` per parameter group (0 where it does not reach)."""
    out = {}
    groups = method.param_groups()
    for g, ps in groups.items():
        gs = torch.autograd.grad(loss, ps, retain_graph=True, allow_unused=True)
        out[g] = float(sum((x.pow(2).sum() for x in gs if x is not None), torch.tensor(0.0)))
    return out
