"""Figures of a pipeline run (PNG at 300 dpi and PDF, sized for a paper column or page).

Each builder takes the resolved config and the aggregated summary (`aggregate.load_summary`)
and returns a matplotlib Figure; it is registered under its file stem
(`ghuda.report.outputs.register_figure`), so `make_figure` finds it by name.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ghuda.pipeline.config import settings
from ghuda.report.frames import balanced_seeds, cost_frame
from ghuda.report.lookup import (
    has_features,
    has_t_sweep,
    method_label,
    method_order,
    metric_column,
    row_variants,
    task_label,
)
from ghuda.report.outputs import FIGURE_BUILDERS, register_figure
from ghuda.runs import write_with

COLUMN_IN = 3.5  # one column of a two-column paper
PAGE_IN = 7.16  # full text width
STYLE = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.2,
    "axes.spines.top": False, "axes.spines.right": False, "savefig.bbox": "tight",
    "pdf.fonttype": 42,
}

Summary = Mapping[str, pd.DataFrame]


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _variant_label(config: Mapping[str, Any], variant: str) -> str:
    return config["variants"][variant]["label"]


def no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def grid(n: int, ncols: int, width: float, row_height: float):
    plt = pyplot()
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, row_height * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _binned(frame: pd.DataFrame, value: str, bins: int = 10) -> pd.DataFrame:
    """Per step bin and run: mean of `value`; then mean and std over runs per bin."""
    if frame.empty:
        return pd.DataFrame(columns=["step", "mean", "std"])
    edges = np.linspace(frame["step"].min(), frame["step"].max() + 1, bins + 1)
    centers = 0.5 * (edges[1:] + edges[:-1])
    f = frame.assign(bin=np.clip(np.digitize(frame["step"], edges) - 1, 0, bins - 1))
    per_run = f.groupby(["dataset", "task", "method", "variant", "seed", "bin"])[value].mean()
    stats = per_run.groupby("bin").agg(["mean", "std"]).reset_index()
    stats["step"] = centers[stats["bin"].to_numpy()]
    return stats


def line_styles(n: int) -> list[dict[str, Any]]:
    """`n` line styles told apart by colour, dash pattern and marker together (tab10 colours
    first, so neighbours differ in hue; dashes and markers separate any repeated hue)."""
    import matplotlib

    colours = matplotlib.colormaps["tab10"].colors
    dashes, markers = ("-", "--", "-.", ":"), ("o", "s", "^", "D", "v", "P", "X", "*")
    return [{"color": colours[i % len(colours)], "linestyle": dashes[i % len(dashes)],
             "marker": markers[i % len(markers)]} for i in range(n)]


def _pair_name(row: pd.Series) -> str:
    return f"{row['first']}|{row['second']}"


@register_figure("conflict_over_training")
def conflict_over_training(config: Mapping[str, Any], summary: Summary):
    """Fraction of conflicting logged steps and cos(g1, g2) over training, baseline runs."""
    plt = pyplot()
    baseline = settings(config).tables.baseline
    train = summary["train"]
    train = train[train["variant"] == baseline].copy()
    fig, (ax_c, ax_cos) = plt.subplots(2, 1, figsize=(COLUMN_IN, 3.8), sharex=True,
                                       layout="constrained")
    if train.empty:
        no_data(ax_c, "no pair statistics logged by baseline runs")
        no_data(ax_cos)
        return fig
    train["pair_name"] = train.apply(_pair_name, axis=1)
    train["conflict"] = train["conflict"].astype(str).str.lower().eq("true").astype(float)
    curves = [(method, pair) for method in method_order(config)
              for pair in dict.fromkeys(train[train["method"] == method]["pair_name"])]
    n_pairs = {m: sum(1 for mm, _ in curves if mm == m) for m, _ in curves}
    for (method, pair), style in zip(curves, line_styles(len(curves)), strict=True):
        pdata = train[(train["method"] == method) & (train["pair_name"] == pair)]
        label = method_label(method) + (f" ({pair})" if n_pairs[method] > 1 else "")
        for ax, value, low, high in ((ax_c, "conflict", 0.0, 1.0), (ax_cos, "cos", -1.0, 1.0)):
            stats = _binned(pdata, value)
            spread = stats["std"].fillna(0)
            ax.plot(stats["step"], stats["mean"], label=label if ax is ax_c else None,
                    markersize=3, **style)
            ax.fill_between(stats["step"], (stats["mean"] - spread).clip(low, high),
                            (stats["mean"] + spread).clip(low, high), color=style["color"],
                            alpha=0.12, linewidth=0)
    ax_c.set_ylabel("conflicting steps (fraction)")
    ax_c.set_ylim(-0.02, 1.02)
    ax_cos.axhline(0.0, color="0.5", linewidth=0.6, linestyle=":")
    ax_cos.set_ylabel(r"cos($g_1$, $g_2$)")
    ax_cos.set_xlabel("training step")
    fig.legend(loc="outside lower center", ncol=3, frameon=False)
    fig.suptitle("Gradient conflict without harmonization\n(mean over runs; band: ±1 std)",
                 fontsize=8)
    return fig


def _after_angles(name: str, options: Mapping[str, Any], cos: np.ndarray, n1: np.ndarray,
                  n2: np.ndarray) -> np.ndarray:
    """Angle (deg) between the harmonized parts h1, h2 of `ghuda.harmonize`, computed exactly
    on 2-D pairs rebuilt from (cos, |g1|, |g2|): vector harmonizers depend on nothing else."""
    import torch

    import ghuda.harmonize

    h = ghuda.harmonize.make(name, **options)
    out = np.full(cos.shape, np.nan)
    for i, (c, a, b) in enumerate(zip(cos, n1, n2, strict=True)):
        if not (np.isfinite(c) and a > 0 and b > 0):
            continue
        c = float(np.clip(c, -1.0, 1.0))
        g1 = torch.tensor([a, 0.0], dtype=torch.float64)
        g2 = torch.tensor([b * c, b * math.sqrt(max(0.0, 1.0 - c * c))], dtype=torch.float64)
        res = h.harmonize(g1, g2)
        p, q = res.h1.double(), res.h2.double()
        den = float(p.norm() * q.norm())
        if den > 0:
            out[i] = math.degrees(math.acos(max(-1.0, min(1.0, float(p @ q) / den))))
    return out


@register_figure("angle_histograms")
def angle_histograms(config: Mapping[str, Any], summary: Summary):
    """Angle between g1 and g2 before harmonization, and between h1 and h2 after it."""
    import ghuda.harmonize

    train = summary["train"]
    def has_parts(variant: str) -> bool:  # h1, h2 defined by coefficients of g1, g2
        spec = config["variants"][variant]
        h = ghuda.harmonize.make(spec["harmonizer"], **spec.get("options", {}))
        return isinstance(h, ghuda.harmonize.VectorHarmonizer) and spec["harmonizer"] != "sum"

    variants = [v for v in row_variants(config) if has_parts(v) and (train["variant"] == v).any()]
    fig, axes = grid(max(1, len(variants)), 2, PAGE_IN, 1.9)
    if not variants:
        no_data(axes[0], "no runs of a vector harmonizer")
        return fig
    bins = np.linspace(0, 180, 37)
    for ax, variant in zip(axes, variants, strict=True):
        spec = config["variants"][variant]
        data = train[train["variant"] == variant].dropna(subset=["cos", "norm1", "norm2"])
        before = data["angle_deg"].to_numpy(dtype=float)
        after = _after_angles(spec["harmonizer"], spec.get("options", {}),
                              data["cos"].to_numpy(float), data["norm1"].to_numpy(float),
                              data["norm2"].to_numpy(float))
        zero_grad = ~((data["norm1"] > 0) & (data["norm2"] > 0)).to_numpy()
        zero_part = np.isnan(after) & ~zero_grad
        ax.hist(before, bins=bins, alpha=0.55, label=r"before: angle($g_1$, $g_2$)")
        ax.hist(after[~np.isnan(after)], bins=bins, alpha=0.55,
                label=r"after: angle($h_1$, $h_2$)")
        ax.axvline(90, color="0.3", linewidth=0.7, linestyle=":")
        title = f"{spec['label']} ({spec['harmonizer']}), {len(data)} logged pairs"
        if zero_grad.any():
            title += f";\n{int(zero_grad.sum())} with a zero gradient (no angle, not counted)"
        if zero_part.any():
            title += (f";\n{int(zero_part.sum())} where $h_1$ or $h_2$ is zero (no angle "
                      "after, not counted)")
        valid = ~np.isnan(after)
        if valid.any() and np.allclose(before[valid], after[valid], atol=1e-6):
            title += (";\nbefore = after (the histograms coincide): $h_i = w_i g_i$ with "
                      "$w_i > 0$,\nso the lengths change but not the angle")
        ax.set_title(title)
        ax.set_xlabel("angle (degrees)")
        ax.set_ylabel("logged steps")
        ax.set_xlim(0, 180)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    return fig


@register_figure("accuracy_over_training")
def accuracy_over_training(config: Mapping[str, Any], summary: Summary):
    """Target accuracy over training: baseline vs +GH vs +GH++ per method."""
    evals = summary["eval"]
    shown = [v for v in row_variants(config)[:3]]
    methods = [m for m in method_order(config)
               if (evals["method"] == m).any() and
               evals[evals["method"] == m]["variant"].nunique() > 1]
    fig, axes = grid(max(1, len(methods)), 3, PAGE_IN, 1.8)
    if not methods:
        no_data(axes[0], "no method with harmonized runs")
        return fig
    for ax, method in zip(axes, methods, strict=True):
        mdata = evals[evals["method"] == method]
        for variant in shown:
            vdata = mdata[mdata["variant"] == variant]
            if vdata.empty:
                continue
            # mean over tasks per (seed, step), then mean and std over seeds
            per_seed = (balanced_seeds(vdata).groupby(["seed", "step"])["target_acc"].mean()
                        .reset_index())
            curve = per_seed.groupby("step")["target_acc"].agg(["mean", "std"]).reset_index()
            (line,) = ax.plot(curve["step"], curve["mean"],
                              label=_variant_label(config, variant))
            ax.fill_between(curve["step"], curve["mean"] - curve["std"].fillna(0),
                            curve["mean"] + curve["std"].fillna(0), color=line.get_color(),
                            alpha=0.15, linewidth=0)
        ax.set_title(method_label(method))
        ax.set_xlabel("training step")
        ax.set_ylabel("target accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    fig.suptitle("Target accuracy during training (mean over tasks; band: ±1 std over seeds)",
                 fontsize=8)
    return fig


def curve_harmonizers() -> list[str]:
    """Registered harmonizers with a weights-vs-angle curve (`Harmonizer.weight_curve`), in
    registry order: a new one joins the figures without a name list."""
    import ghuda.harmonize

    return [n for n in ghuda.harmonize.names() if ghuda.harmonize.REGISTRY.get(n).weight_curve]


def weight_curves(name: str, options: Mapping[str, Any], angles_deg: np.ndarray,
                   ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """w1, w2 of harmonizer `name` on 2-D pairs with |g1|/|g2| = ratio at the given angles
    (NaN where the harmonizer reports a degenerate-case fallback)."""
    import torch

    import ghuda.harmonize

    h = ghuda.harmonize.make(name, **options)
    w1, w2 = np.empty_like(angles_deg), np.empty_like(angles_deg)
    for i, a in enumerate(np.radians(angles_deg)):
        g1 = torch.tensor([ratio, 0.0], dtype=torch.float64)
        g2 = torch.tensor([math.cos(a), math.sin(a)], dtype=torch.float64)
        res = h.harmonize(g1, g2)
        # a degenerate-case fallback (exact GH++ at 180°) is not on the curve: leave a gap
        w1[i], w2[i] = (np.nan, np.nan) if res.fallback else (res.w1, res.w2)
    return w1, w2


@register_figure("weights_vs_angle")
def weights_vs_angle(config: Mapping[str, Any], summary: Summary):
    """w1, w2 against the angle for GH, GH++ and exact GH++: library curves on a grid
    (|g1| = |g2| solid, |g1| = 3|g2| dashed) and the logged training points."""
    names = curve_harmonizers()
    fig, axes = grid(len(names), 3, PAGE_IN, 2.2)
    angles = np.linspace(0.0, 180.0, settings(config).figures.weights_angle_grid)
    train = summary["train"]
    for ax, name in zip(axes, names, strict=True):
        variants = [v for v, spec in config["variants"].items() if spec["harmonizer"] == name]
        default = next((v for v in row_variants(config) if v in variants), None)
        options = config["variants"][default].get("options", {}) if default else {}
        for ratio, style in ((1.0, "-"), (3.0, "--")):
            w1, w2 = weight_curves(name, options, angles, ratio)
            suffix = "" if ratio == 1.0 else r", $|g_1|=3|g_2|$"
            # w1 drawn wider under w2: the two coincide for GH with equal norms
            ax.plot(angles, w1, style, color="C0", linewidth=2.4, label=r"$w_1$" + suffix)
            ax.plot(angles, w2, style, color="C1", linewidth=1.1, label=r"$w_2$" + suffix)
        logged = train[train["variant"].isin(variants if default is None else [default])]
        logged = logged.dropna(subset=["w1", "w2"])
        ax.scatter(logged["angle_deg"], logged["w1"], s=3, color="C0", alpha=0.3,
                   label=r"logged $w_1$", rasterized=True)
        ax.scatter(logged["angle_deg"], logged["w2"], s=3, color="C1", alpha=0.3,
                   label=r"logged $w_2$", rasterized=True)
        opt_text = ", ".join(f"{k}={v}" for k, v in options.items())
        above = int((logged[["w1", "w2"]] > 4.0).to_numpy().sum())
        ax.set_title(f"{name}" + (f" ({opt_text})" if opt_text else "")
                     + f", {len(logged)} logged" + (f" ({above} w > 4 off scale)" if above else ""))
        ax.axvline(90, color="0.5", linewidth=0.6, linestyle=":")
        ax.set_xlabel(r"angle($g_1$, $g_2$) (degrees)")
        ax.set_ylabel("loss weight")
        ax.set_xlim(0, 180)
        low = min(-1.0, float(np.nanmin(np.concatenate([[0.0], logged["w2"].to_numpy()]))))
        ax.set_ylim(max(low, -3.0), 4.0)
    if axes:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
    return fig


@register_figure("step_cost")
def step_cost(config: Mapping[str, Any], summary: Summary):
    """Step time relative to the unharmonized baseline (top) and peak memory (bottom), per
    method and harmonizer; each method's bars are centred on its label."""
    plt = pyplot()
    frame = cost_frame(config, summary["runs"])
    fig, (ax_t, ax_m) = plt.subplots(2, 1, figsize=(PAGE_IN, 4.2), sharex=True,
                                     layout="constrained")
    frame = frame[frame["variant"].isin(row_variants(config))] if not frame.empty else frame
    if frame.empty:
        no_data(ax_t)
        no_data(ax_m)
        return fig
    kinds = ", ".join(sorted({k for ks in frame["mem_kinds"] for k in str(ks).split(", ") if k}))
    frame = frame.groupby(["method", "variant"], sort=False).agg(
        ratio=("ratio", "median"), peak_mb=("peak_mb", "median"),
        extra_fwd=("extra_fwd", "first"), extra_bwd=("extra_bwd", "first")).reset_index()
    methods = [m for m in method_order(config) if (frame["method"] == m).any()]
    variants = list(dict.fromkeys(frame["variant"]))
    colour = {v: f"C{i % 10}" for i, v in enumerate(variants)}
    widest = max(int((frame["method"] == m).sum()) for m in methods)
    width = 0.8 / widest
    for i, method in enumerate(methods):
        mdata = frame[frame["method"] == method].set_index("variant")
        present = [v for v in variants if v in mdata.index]
        for j, variant in enumerate(present):
            x = i + (j - (len(present) - 1) / 2) * width
            ax_t.bar(x, mdata.loc[variant, "ratio"], width=width, color=colour[variant])
            ax_m.bar(x, mdata.loc[variant, "peak_mb"], width=width, color=colour[variant])
    ax_t.axhline(1.0, color="0.3", linewidth=0.7, linestyle=":")
    ax_t.set_ylabel("CPU time per step / baseline's")
    ax_t.set_title("Cost per training step (median over tasks and seeds)")
    ax_m.set_ylabel("peak memory (MB)")
    ax_m.set_title(f"Peak memory of the run ({kinds or 'unknown kind'}; docs/run-outputs.md)")
    ax_m.set_xticks(range(len(methods)), [method_label(m) for m in methods])
    first = frame.drop_duplicates("variant").set_index("variant")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[v]) for v in variants]
    labels = [f"{_variant_label(config, v)} (+{first.loc[v, 'extra_fwd']} fwd, "
              f"+{first.loc[v, 'extra_bwd']} bwd)" for v in variants]
    fig.legend(handles, labels, loc="outside lower center", ncol=4, frameon=False)
    return fig


@register_figure("tsne", when=has_features)
def tsne(config: Mapping[str, Any], summary: Summary):
    """t-SNE of source and target features of the runs listed under `features`."""
    from sklearn.manifold import TSNE

    from ghuda.pipeline.grid import task_dir
    from ghuda.report.aggregate import results_root

    fcfg = settings(config).figures
    max_points, perplexity = fcfg.tsne_max_points, fcfg.tsne_perplexity
    panels = [(f["dataset"], f["task"], f["method"], v, s)
              for f in config["features"] for v in f["variants"] for s in f["seeds"]]
    fig, axes = grid(len(panels), 3, PAGE_IN, 2.3)
    for ax, (dataset, task, method, variant, seed) in zip(axes, panels, strict=True):
        path = (results_root(config) / dataset / task_dir(task) / method / variant
                / f"seed{seed}" / "features.npz")
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; the run must set train.save_features")
        with np.load(path) as npz:
            rng = np.random.default_rng(seed)
            parts = []
            for domain in ("source", "target"):
                feats = npz[domain]
                idx = rng.permutation(len(feats))[:max_points]
                parts.append(feats[idx])
        points = np.concatenate(parts).astype(np.float64)
        emb = TSNE(n_components=2, perplexity=min(perplexity, (len(points) - 1) / 3),
                   init="pca", random_state=0).fit_transform(points)
        n_src = len(parts[0])
        ax.scatter(emb[:n_src, 0], emb[:n_src, 1], s=3, alpha=0.6, label="source",
                   rasterized=True)
        ax.scatter(emb[n_src:, 0], emb[n_src:, 1], s=3, alpha=0.6, label="target",
                   rasterized=True)
        ax.set_title(f"{method_label(method)} {_variant_label(config, variant)}, "
                     f"{task_label(task)}, seed {seed}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False,
               markerscale=3)
    return fig


@register_figure("ghpp_t_sensitivity", when=has_t_sweep)
def ghpp_t_sensitivity(config: Mapping[str, Any], summary: Summary):
    """Accuracy against the GH++ trade-off t, with the baseline and GH as references."""
    plt = pyplot()
    tcfg = settings(config).tables
    sweep = tcfg.t_sweep
    protocol = tcfg.protocol
    col = metric_column(config, sweep["dataset"], protocol)
    runs = summary["runs"]
    data = runs[(runs["dataset"] == sweep["dataset"]) & (runs["task"] == sweep["task"])
                & (runs["method"] == sweep["method"])]
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 2.4), layout="constrained")
    ts, means, stds = [], [], []
    for variant in sweep["variants"]:
        vals = data[data["variant"] == variant][col]
        if vals.empty:
            continue
        ts.append(config["variants"][variant]["options"]["t"])
        means.append(vals.mean())
        stds.append(vals.std(ddof=1) if len(vals) > 1 else 0.0)
    order = np.argsort(ts)
    ax.errorbar(np.asarray(ts)[order], np.asarray(means)[order], yerr=np.asarray(stds)[order],
                marker="o", capsize=3, label="+GH++ (t)")
    refs = [tcfg.baseline] + [v for v in row_variants(config)
                              if config["variants"][v]["harmonizer"] == "gh"]
    for variant, style in zip(refs[:2], ("--", ":"), strict=False):
        vals = data[data["variant"] == variant][col]
        if vals.empty:
            continue
        ax.axhline(vals.mean(), linestyle=style, color="0.3",
                   label=f"{_variant_label(config, variant)} ({vals.mean():.1f})")
    ax.set_xlabel("GH++ trade-off t")
    ax.set_ylabel(f"target accuracy (%), `{protocol}`")
    ax.set_title(f"{method_label(sweep['method'])}, {task_label(sweep['task'])} "
                 f"(mean ± std over seeds)")
    ax.legend(frameon=False)
    return fig


def save_figure(fig, out_dir: str | os.PathLike[str], stem: str) -> list[Path]:
    """Write <stem>.png (300 dpi) and <stem>.pdf atomically, without timestamps."""
    plt = pyplot()
    out = Path(out_dir)
    paths = []
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
        path = out / f"{stem}.{ext}"
        write_with(path, lambda tmp, e=ext, m=meta: fig.savefig(tmp, format=e, dpi=300,
                                                                metadata=m))
        paths.append(path)
    plt.close(fig)
    return paths


def make_figure(name: str, config: Mapping[str, Any], summary: Summary,
                out_dir: str | os.PathLike[str]) -> list[Path]:
    """Build figure `name` in the paper style and save it."""
    FIGURE_BUILDERS.discover()
    build = FIGURE_BUILDERS.get(name)
    plt = pyplot()
    with plt.rc_context(STYLE):
        fig = build(config, summary)
        return save_figure(fig, out_dir, name)
