"""Tables and figures of the extension runs (issue 16), generated from their run folders.

``extensions.md`` / ``.tex``: per task and dataset, every metric (mean ± std over seeds) of
each variant under the config's protocol (``tables.protocol``, the engine's protocol names
`ghuda.report.aggregate.PROTOCOLS`; for an extension ``source_val`` selects on its val
split, held out from the training data), the paired
Δ of the primary metric against the baseline over the seeds where both completed, with its
95 % t interval and n; diverged runs counted in their own column; and the primary metric
under all three protocols (``oracle`` selects on test labels: labelled so).
``extension_conflict`` (fraction of logged steps whose two gradients conflict, over
training) and ``extension_weights_vs_angle`` (logged w1, w2 of GH / GH++ against the angle,
with the harmonizer's curve at equal norms).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ghuda import runs
from ghuda.extensions.grid import ExtensionRunSpec, expand_extension_runs
from ghuda.pipeline.config import settings
from ghuda.report.aggregate import PROTOCOLS
from ghuda.report.render import DASH, Table, fmt, fmt_p, to_latex, to_markdown
from ghuda.report.stats import paired
from ghuda.report.tables import MIN_PAIRS, delta_ci, mean_std_text

TASK_TITLES = {"retrieval": "Image retrieval with text feedback",
               "detection": "Object detection"}
METRIC_LABELS = {"map50": "mAP@0.5"}


@dataclass(frozen=True)
class RunResult:
    spec: ExtensionRunSpec
    metrics: dict[str, Any]
    train: list[dict[str, Any]]

    @property
    def completed(self) -> bool:
        return self.metrics["status"] == "completed"


def load_results(config: Mapping[str, Any], results: Path) -> list[RunResult]:
    """Every extension run of `config` read from `results`; a missing run is an error."""
    out = []
    for spec in expand_extension_runs(config):
        folder = runs.RunFolder(results / spec.key)
        metrics = folder.read_metrics()
        train = [r for r in folder.read_history() if r.get("kind") == "train"]
        out.append(RunResult(spec, metrics, train))
    return out


def _label(config: Mapping[str, Any], variant: str) -> str:
    return config["variants"][variant]["label"]


def _groups(results: list[RunResult]) -> dict[tuple[str, str], list[RunResult]]:
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.spec.extension, r.spec.data), []).append(r)
    return groups


def _value(r: RunResult, protocol: str, metric: str) -> float | None:
    return r.metrics["protocols"][protocol][metric] if r.completed else None


def task_table(config: Mapping[str, Any], rows: list[RunResult], protocol: str) -> Table:
    """Metrics of one task/dataset under `protocol`, with the paired Δ of the primary."""
    first = rows[0].metrics
    metrics, primary = first["run"]["metrics"], first["run"]["primary"]
    ext, data = rows[0].spec.extension, rows[0].spec.data
    baseline = settings(config).tables.baseline
    variants = list(dict.fromkeys(r.spec.variant for r in rows))
    plabel = METRIC_LABELS.get(primary, primary)
    table = Table(
        caption=f"{TASK_TITLES.get(ext, ext)} on {data}: test metrics (%), protocol "
                f"`{protocol}`, mean ± std over seeds",
        columns=["Variant", *(METRIC_LABELS.get(m, m) for m in metrics),
                 f"Δ {plabel} [CI]", "p (t)", "n", "div.", "s / run"],
        label=f"tab:ext-{ext}-{data}")
    by_seed = {(r.spec.variant, r.spec.seed): r for r in rows}
    for v in variants:
        cell = [r for r in rows if r.spec.variant == v]
        done = [r for r in cell if r.completed]
        cells = [_label(config, v)]
        cells += [mean_std_text([_value(r, protocol, m) for r in done]) for m in metrics]
        if v == baseline:
            cells += [DASH, DASH, str(len(done))]
        else:
            seeds = sorted(r.spec.seed for r in done
                           if (baseline, r.spec.seed) in by_seed
                           and by_seed[(baseline, r.spec.seed)].completed)
            a = [_value(by_seed[(v, s)], protocol, primary) for s in seeds]
            b = [_value(by_seed[(baseline, s)], protocol, primary) for s in seeds]
            d = paired(a, b)
            enough = d.n >= MIN_PAIRS
            cells += [delta_ci(d) if enough else fmt(d.mean, signed=True),
                      fmt_p(d.p_t) if enough else DASH, str(d.n)]
        wall = [r.metrics["cost"]["wall_s"] for r in cell]
        cells += [f"{len(cell) - len(done)}/{len(cell)}", fmt(float(np.mean(wall)), 0)]
        table.add(cells)
    table.notes = [
        f"Δ: paired difference of {plabel} against `{baseline}` over the n seeds where both "
        "runs completed, 95 % t interval (none from fewer than 3 pairs). div.: runs stopped "
        "by a non-finite loss (k of the row's runs); their metrics are not in the means. "
        "s / run: wall seconds of one run (training and evaluation) on the run's device.",
        f"Data: {first['run']['data']}.",
    ]
    return table


def protocol_table(config: Mapping[str, Any], rows: list[RunResult]) -> Table:
    """The primary metric of each variant under each protocol (`PROTOCOLS`)."""
    primary = rows[0].metrics["run"]["primary"]
    ext, data = rows[0].spec.extension, rows[0].spec.data
    table = Table(caption=f"{TASK_TITLES.get(ext, ext)} on {data}: test "
                          f"{METRIC_LABELS.get(primary, primary)} (%) by model selection",
                  columns=["Variant", *(p + " (test labels)" * (p == "oracle")
                                         for p in PROTOCOLS)],
                  label=f"tab:ext-{ext}-{data}-protocols")
    for v in dict.fromkeys(r.spec.variant for r in rows):
        done = [r for r in rows if r.spec.variant == v and r.completed]
        cells = [_label(config, v)]
        cells += [mean_std_text([_value(r, key, primary) for r in done])
                  for key in PROTOCOLS]
        table.add(cells)
    table.notes = ["last: the final evaluation. source_val: the evaluation with the best "
                   "primary metric on the val split (held out from the training data; no "
                   "test labels). oracle: the best test value over the evaluations: it selects "
                   "on test labels, as the released scripts report."]
    return table


def conflict_figure(config: Mapping[str, Any], results: list[RunResult]):
    """Fraction of logged steps with conflicting gradients (cos < 0), per variant, over
    training (mean over seeds, in ten bins of steps)."""
    from ghuda.report.figures import COLUMN_IN, grid

    groups = _groups(results)
    fig, axes = grid(len(groups), 2, 2 * COLUMN_IN, 2.2)
    for ax, ((ext, data), rows) in zip(axes, groups.items(), strict=True):
        for i, v in enumerate(dict.fromkeys(r.spec.variant for r in rows)):
            steps, conflict = [], []
            for r in rows:
                if r.spec.variant == v:
                    for rec in r.train:
                        steps.append(rec["step"])
                        conflict.append(float(rec["pairs"][0]["conflict"]))
            if not steps:
                continue
            edges = np.linspace(0, max(steps), 11)
            idx = np.clip(np.digitize(steps, edges[1:-1]), 0, 9)
            frac = [np.mean(np.asarray(conflict)[idx == k]) if np.any(idx == k) else np.nan
                    for k in range(10)]
            ax.plot((edges[:-1] + edges[1:]) / 2, frac, marker="o", markersize=2,
                    color=f"C{i}", label=_label(config, v))
        ax.set_title(f"{TASK_TITLES.get(ext, ext)} ({data})")
        ax.set_xlabel("training step")
        ax.set_ylabel("conflicting steps (fraction)")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(frameon=False)
    return fig


def weights_figure(config: Mapping[str, Any], results: list[RunResult]):
    """Logged w1, w2 of every harmonizer with a weight curve that the runs use
    (`ghuda.report.figures.curve_harmonizers`: GH, GH++) against the angle of the pair, with
    the harmonizer's weight curves at equal norms (`ghuda.report.figures.weight_curves`)."""
    from ghuda.report.figures import PAGE_IN, curve_harmonizers, grid, no_data, weight_curves

    used = {r.spec.run_config["harmonizer"]["name"] for r in results}
    panels = [(key, h) for key in _groups(results) for h in curve_harmonizers() if h in used]
    fig, axes = grid(len(panels), 2, PAGE_IN, 2.2)
    grid = np.linspace(0.0, 180.0, 181)
    for ax, ((ext, data), h) in zip(axes, panels, strict=True):
        rows = [r for r in results if (r.spec.extension, r.spec.data) == (ext, data)
                and r.spec.run_config["harmonizer"]["name"] == h]
        points = [rec["pairs"][0] for r in rows for rec in r.train
                  if rec["pairs"] and rec["pairs"][0].get("w1") is not None]
        if not rows:
            no_data(ax, f"no {h} runs")
            continue
        options = rows[0].spec.run_config["harmonizer"]["options"]
        w1, w2 = weight_curves(h, options, grid, 1.0)
        ax.plot(grid, w1, color="C0", linewidth=2.0, label=r"$w_1$ ($|g_1|=|g_2|$)")
        ax.plot(grid, w2, color="C1", linewidth=1.0, label=r"$w_2$ ($|g_1|=|g_2|$)")
        ax.scatter([p["angle_deg"] for p in points], [p["w1"] for p in points], s=3,
                   color="C0", alpha=0.4, label=r"logged $w_1$", rasterized=True)
        ax.scatter([p["angle_deg"] for p in points], [p["w2"] for p in points], s=3,
                   color="C1", alpha=0.4, label=r"logged $w_2$", rasterized=True)
        ax.axvline(90, color="0.5", linewidth=0.6, linestyle=":")
        ax.set_xlim(0, 180)
        ax.set_ylim(-1.0, 4.0)
        ax.set_xlabel(r"angle($g_1$, $g_2$) (degrees)")
        ax.set_ylabel("loss weight")
        ax.set_title(f"{ext} ({data}): {h}, {len(points)} logged steps")
    if axes:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=4, frameon=False)
    return fig


def write_report(config: Mapping[str, Any], results_dir: Path, tables_dir: Path,
                 figures_dir: Path) -> list[Path]:
    """Write extensions.md/.tex and the two figures; returns the written paths."""
    from ghuda.report.figures import STYLE, pyplot, save_figure

    results = load_results(config, results_dir)
    if not results:
        raise ValueError("the config has no extension runs (its `extensions` list is empty)")
    protocol = settings(config).tables.protocol
    tables = []
    for rows in _groups(results).values():
        tables += [task_table(config, rows, protocol), protocol_table(config, rows)]
    md = "\n".join(to_markdown(t) for t in tables)
    tex = "\n".join(to_latex(t) for t in tables)
    written = [tables_dir / "extensions.md", tables_dir / "extensions.tex"]
    runs.write_text(written[0], md)
    runs.write_text(written[1], tex)
    plt = pyplot()
    with plt.rc_context(STYLE):
        written += save_figure(conflict_figure(config, results), figures_dir,
                               "extension_conflict")
        written += save_figure(weights_figure(config, results), figures_dir,
                               "extension_weights_vs_angle")
    return written
