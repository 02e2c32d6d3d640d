"""Figure of the violation regions over (angle, norm ratio): figures/theory_violations.{png,pdf}.

Panels (shipped code, 2-D pairs, t = 0.5): min(cos(update, g1), cos(update, g2)) for GH, GH++
as released and exact GH++ — negative (red) where the update conflicts with a task, the black
contour is the conflict boundary — and the angle between the released and exact GH++ updates.
Logged pairs of training runs are overlaid as dots; a legend names both.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from ghuda.runs import write_with
from ghuda.theory.suite import GRID_TITLES, Grid, TheoryReport

MAX_POINTS = 3000
# No creation dates: the same checks give byte-identical files.
METADATA: dict[str, dict[str, None]] = {"png": {}, "pdf": {"CreationDate": None, "ModDate": None}}


def _overlay(ax: plt.Axes, report: TheoryReport) -> None:
    th, lr = report.logged_theta_deg, report.logged_log_ratio
    if th.size:
        step = max(1, th.size // MAX_POINTS)
        ax.scatter(th[::step], lr[::step], s=4, c="k", alpha=0.5, linewidths=0,
                   label="logged pairs")


def draw(report: TheoryReport) -> plt.Figure:
    grid: Grid = report.grid  # type: ignore[assignment]
    panels = [k for k in GRID_TITLES if k in grid.min_cos]
    if grid.gap_deg is not None:
        panels.append("gap")
    ncols = 2
    nrows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(nrows, ncols, figsize=(10, 4 * nrows), squeeze=False,
                             constrained_layout=True)
    extent = (grid.theta_deg[0], grid.theta_deg[-1], grid.log_ratio[0], grid.log_ratio[-1])
    for ax, key in zip(axes.flat, panels, strict=False):
        if key == "gap":
            im = ax.imshow(grid.gap_deg, origin="lower", aspect="auto", extent=extent,
                           cmap="viridis")
            fig.colorbar(im, ax=ax, label="angle between updates (deg)")
            ax.set_title("released vs exact GH++ update direction")
        else:
            values = grid.min_cos[key]
            im = ax.imshow(values, origin="lower", aspect="auto", extent=extent, cmap="RdBu",
                           vmin=-1, vmax=1)
            if values.min() < 0 < values.max():
                ax.contour(grid.theta_deg, grid.log_ratio, values, levels=[0.0], colors="k",
                           linewidths=1.0)
            fig.colorbar(im, ax=ax, label="min cos(update, g_i)")
            share = 100 * float(np.mean(values < 0))
            ax.set_title(f"{GRID_TITLES[key]}: conflict on {share:.3g}% of the grid")
        _overlay(ax, report)
        ax.set_xlabel("θ = angle(g1, g2) (deg)")
        ax.set_ylabel("log10 |g2| / |g1|")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("Where the harmonized update conflicts with a task (red, t = 0.5)")
    fig.legend(handles=_legend_handles(report), loc="outside lower center", ncol=2,
               frameon=False)
    return fig


def _legend_handles(report: TheoryReport) -> list[Line2D]:
    """Legend entries for the contour and (when there are any) the logged-pair dots."""
    handles = [Line2D([], [], color="k", linewidth=1.0,
                      label="conflict boundary: min cos(update, g_i) = 0")]
    if report.logged_theta_deg.size:
        handles.append(Line2D([], [], color="k", alpha=0.5, marker="o", markersize=3,
                              linestyle="none",
                              label=f"pairs logged by training runs "
                                    f"({report.logged_theta_deg.size})"))
    return handles


def save(report: TheoryReport, stem: Path) -> list[Path]:
    """Write stem.png and stem.pdf atomically; returns the paths."""
    fig = draw(report)
    paths = []
    try:
        for ext in ("png", "pdf"):
            path = stem.with_name(f"{stem.name}.{ext}")
            write_with(path, lambda tmp, ext=ext: fig.savefig(
                tmp, format=ext, dpi=150, metadata=METADATA[ext]))
            paths.append(path)
    finally:
        plt.close(fig)
    return paths
