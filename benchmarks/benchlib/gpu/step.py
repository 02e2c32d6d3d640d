"""gpu_check's ``step`` section: the DANN-style step (`benchlib.dann_step`) of the plain sum,
the two-pass floor, every two-pass harmonizer (direct mode, no statistics, as on the engine's
non-logging steps) and the released three-pass form, in fp32 and in bf16 autocast with
channels-last; interleaved round robin, median over repeats."""

from __future__ import annotations

import time

import torch
from torch import nn

from benchlib.dann_step import FLOOR, DannStep, StepConfig, StepModel, two_pass_harmonizers
from benchlib.gpu.rows import Context, Row
from benchlib.timing import quartiles, rotation

PRECISIONS = ("fp32", "bf16+channels_last")


def configs() -> dict[str, StepConfig]:
    """label -> configuration: plain (one backward of L1 + L2), floor, each two-pass
    harmonizer, three_pass (gh, released weighted-loss form)."""
    return {"plain": StepConfig("sum"), "floor": FLOOR,
            **{name: StepConfig(name) for name in two_pass_harmonizers()},
            "three_pass": StepConfig("gh", {"mode": "weighted_loss"})}


def _model(backbone: str, image: int) -> StepModel:
    from ghuda.models import build_backbone

    def build() -> tuple[nn.Module, int]:
        net = build_backbone(backbone)
        return net, net.feature_dim

    return StepModel(build, image, classes=31, hidden=1024)


def _optimizer(params: list[nn.Parameter]) -> torch.optim.Optimizer:
    from ghuda.engine.sgd import SGD

    return SGD(params, lr=1e-4, momentum=0.9, nesterov=True, weight_decay=5e-4)


def run(ctx: Context) -> list[Row]:
    """ms per step of each configuration at each precision, and its ratio to plain and
    floor."""
    s, steps = ctx.sizes, configs()
    labels = list(steps)
    rows = []
    for precision in PRECISIONS:
        bench = DannStep(_model(s.step_backbone, s.image), s.batch, ctx.device, steps,
                         _optimizer, bf16=precision != "fp32")
        times: dict[str, list[float]] = {c: [] for c in labels}
        for r in range(s.step_warmup + s.step_repeats):
            for label in rotation(labels, r):
                start = time.perf_counter()
                bench.step(label)
                if r >= s.step_warmup:
                    times[label].append(1e3 * (time.perf_counter() - start))
        medians = {c: quartiles(t) for c, t in times.items()}
        for label in labels:
            med, q1, q3 = medians[label]
            rows.append(Row("step", label, precision, backbone=s.step_backbone,
                            batch=s.batch, steps=s.step_repeats, ms_per_step=med, ms_q1=q1,
                            ms_q3=q3, vs_plain=med / medians["plain"][0],
                            vs_floor=med / medians["floor"][0],
                            note=f"{s.image} px, {s.batch}+{s.batch} images"))
        del bench
    return rows
