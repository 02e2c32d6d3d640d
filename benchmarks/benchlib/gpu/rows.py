"""gpu_check's CSV row, its sizes (full or ``--quick``) and what every section is given."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchlib.csv_out import write_csv as write_records


@dataclass
class Row:
    """One CSV row; `ms_per_step` is the median, `note` says what was measured."""

    section: str
    name: str
    precision: str = ""
    dataset: str = ""
    backbone: str = ""
    batch: int = 0
    steps: int = 0
    ms_per_step: float = float("nan")
    ms_q1: float = float("nan")
    ms_q3: float = float("nan")
    vs_plain: float = float("nan")
    vs_floor: float = float("nan")
    acc: float = float("nan")
    status: str = "ok"
    note: str = ""


@dataclass(frozen=True)
class Sizes:
    """How much each section does. `datasets`: None for every dataset of configs/paper.yaml;
    `stand_in`: a backbone trained instead of every paper backbone but the digits' (None:
    the paper's own)."""

    step_backbone: str
    image: int
    batch: int
    step_repeats: int
    step_warmup: int
    digits_steps: int
    backbone_steps: int
    datasets: tuple[str, ...] | None
    stand_in: str | None
    batch_override: int | None
    workers: int | None
    digits_runs: tuple[tuple[str, str], ...]
    backbone_options: str = "{}"
    tree_scale: int = 1
    tree_side: int = 12
    backbone_tree_scale: int = 1
    loader_backbone: str = "resnet50"
    loader_steps: int = 60
    loader_more_workers: tuple[int, ...] = (12,)  # besides the paper's num_workers
    determinism_steps: int = 200


def sizes(quick: bool) -> Sizes:
    """The full sizes, or tiny ones that exercise every path on the CPU (``--quick``)."""
    from benchlib.dann_step import two_pass_harmonizers
    from ghuda import methods

    digits_runs = (("source_only", "sum"), ("dann", "gh")) if quick else (
        *((m, "sum") for m in methods.names()),
        *(("dann", h) for h in two_pass_harmonizers()))
    if quick:  # tiny models: a tiny ViT stands in for the paper backbones on 224 px images
        return Sizes("digit_cnn", 32, 4, 2, 1, 3, 2, ("office31", "digits"), "tiny_vit", 2,
                     0, digits_runs, "{image_size: 224, patch_size: 32}",
                     loader_backbone="tiny_vit", loader_steps=4, determinism_steps=6,
                     loader_more_workers=())
    return Sizes("resnet50", 224, 32, 20, 5, 100, 20, None, None, None, None, digits_runs,
                 tree_scale=16, tree_side=300, backbone_tree_scale=2)


@dataclass(frozen=True)
class Context:
    """What a section is given: sizes, device, where digits-mini is, a scratch folder, torch
    CPU threads (None: torch's default)."""

    sizes: Sizes
    device: torch.device
    data_root: Path
    scratch: Path
    threads: int | None


def write_csv(rows: list[Row], out: Path, meta: dict) -> None:
    """All rows so far, each with `meta`, replacing `out` at once (nothing for no rows)."""
    if not rows:
        return
    records = [{**asdict(r), **meta} for r in rows]
    write_records(out, list(records[0]), records)


def table(rows: list[Row]) -> str:
    """The rows as a text table."""
    lines = [f"{'section':8s} {'name':22s} {'precision':18s} {'dataset':11s} {'backbone':10s} "
             f"{'ms/step':>9s} {'x plain':>7s} {'x floor':>7s} {'acc':>6s} status"]
    for r in rows:
        lines.append(f"{r.section:8s} {r.name:22s} {r.precision:18s} {r.dataset:11s} "
                     f"{r.backbone:10s} {r.ms_per_step:9.1f} {r.vs_plain:7.2f} "
                     f"{r.vs_floor:7.2f} {r.acc:6.1f} {r.status}")
    return "\n".join(lines)
