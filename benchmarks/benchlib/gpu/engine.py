"""What the sections that train through the engine share: a run and its row, digits-mini, the
paper config, and generated trees in each paper dataset's layout (`ghuda.data.fixtures`)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from benchlib.gpu.rows import Context, Row, Sizes

REPO = Path(__file__).resolve().parents[3]


def engine_run(overrides: list[str], out: Path) -> dict:
    """Train the run config of `overrides` into `out`; its metrics, or a diverged status."""
    from ghuda import config
    from ghuda.engine.trainer import NonFiniteLoss, Trainer

    cfg = config.load(None, overrides)
    try:
        return Trainer(cfg, out, bar=False).run()
    except NonFiniteLoss as err:
        return {"status": "diverged", "note": str(err)}


def row_from_metrics(row: Row, metrics: dict) -> Row:
    """`row` with the run's median step time, last target accuracy and status."""
    if metrics.get("status") == "diverged" and "cost" not in metrics:
        row.status, row.note = "diverged", metrics.get("note", "")
        return row
    row.ms_per_step = float(metrics["cost"]["step_ms_median"])
    row.acc = float(metrics["protocols"]["last"]["acc"])
    row.status = metrics.get("status", "ok")
    return row


def device_overrides(ctx: Context) -> list[str]:
    """The device and, if set, the torch CPU threads."""
    out = [f"train.device={ctx.device}"]
    if ctx.threads is not None:
        out.append(f"train.threads={ctx.threads}")
    return out


def digits_root(ctx: Context) -> Path:
    """The data root of digits-mini: `ctx.data_root` if it has it, else it is built in the
    scratch folder."""
    from ghuda.data import digits_mini

    if (ctx.data_root / digits_mini.NAME / "manifest.json").is_file():
        return ctx.data_root
    digits_mini.build(ctx.scratch / digits_mini.NAME, seed=digits_mini.expected()["seed"])
    return ctx.scratch


@cache
def paper() -> dict:
    """configs/paper.yaml, read once."""
    return yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())


def paper_datasets(s: Sizes) -> tuple[str, ...]:
    """The datasets of `s`, by default every dataset configs/paper.yaml runs."""
    return tuple(paper()["datasets"]) if s.datasets is None else s.datasets


def paper_backbones(dataset: str) -> list[str]:
    """The backbones configs/paper.yaml trains on `dataset`: the dataset's, then any that a
    method sets."""
    spec = paper()["datasets"][dataset]
    out = [spec["run"]["model"]["backbone"]]
    for method in spec["methods"].values():
        name = ((method or {}).get("run") or {}).get("model", {}).get("backbone")
        if name and name not in out:
            out.append(name)
    return out


def fixture_dataset(dataset: str, ctx: Context, scale: int | None = None) -> Path:
    """Generate, archive and register a fixture tree of `dataset` (`scale`, default
    ``tree_scale``, times the test fixture's images per class, ``tree_side`` pixels square);
    returns the data root."""
    from ghuda.data.fetch import register
    from ghuda.data.fixtures import make_archives, make_recipe, make_tree

    s = ctx.sizes
    scale = s.tree_scale if scale is None else scale
    base = ctx.scratch / f"tree_{dataset}_x{scale}"
    if (base / "data").is_dir():  # made by an earlier section
        return base / "data"
    counts, class_counts = make_tree(dataset, base / "tree", scale, s.tree_side)
    archives = make_archives(dataset, base / "tree", base / "dl")
    recipe = make_recipe(dataset, archives, counts, class_counts, "http://127.0.0.1:9/none",
                         base / "recipe.json")
    root = base / "data"
    register(dataset, [base / "dl"], root=root, recipe_file=str(recipe), dvc=False,
             log=lambda *_: None)
    return root


def paper_run(dataset: str, root: Path, backbone: str, method: str, steps: int,
              ctx: Context) -> tuple[list[str], int, int]:
    """Engine overrides for `method` on the first paper task of `dataset` (its fixture tree
    under `root`): the paper batch size and `num_workers`, no pretrained weights, lr 1e-6;
    with the batch size and workers."""
    s = ctx.sizes
    spec = paper()["datasets"][dataset]
    source, target = spec["tasks"][0].split("->")
    train = spec["methods"][method].get("run", {}).get("train", {})
    batch = s.batch_override or int(train.get("batch_size", 32))
    workers = s.workers if s.workers is not None else int(
        paper()["run_defaults"]["train"].get("num_workers", 0))
    overrides = [f"dataset.name={dataset}", f"dataset.source={source}",
                 f"dataset.target={target}", f"dataset.root={root}",
                 f"model.backbone={backbone}", "model.pretrained=false",
                 *([f"model.options={s.backbone_options}"] if backbone == "tiny_vit" else []),
                 f"method.name={method}", f"train.batch_size={batch}", f"train.steps={steps}",
                 # a timing run: from scratch on solid-colour images the paper lr can diverge
                 # (CDAN+E did at step 12 on the H200), and the lr does not change step time
                 "train.lr=1e-6",
                 f"train.eval_every={steps}", "train.checkpoint_every=0",
                 f"train.num_workers={workers}", *device_overrides(ctx)]
    return overrides, batch, workers

