"""Run every theory check (issue 6) and collect results, explanations and the figure's grid."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ghuda.theory import descent, logged, pairwise, weighted
from ghuda.theory.geometry import Outputs, Pairs, Subject, make_pairs, sample_pairs
from ghuda.theory.properties import Property, direction_gap, properties, smallest_task_cosine
from ghuda.theory.reference import task_margins
from ghuda.theory.result import CheckResult, not_run
from ghuda.theory.subjects import label, shipped_subjects

# Properties re-checked on logged statistics (issue 6 item 6: items 1 and 4, and 5's conflict).
LOGGED_KEYS = ("1a", "1b", "1c", "1d", "4a", "4b", "4c", "4e", "5a", "5c")


@dataclass(frozen=True)
class Settings:
    """Sizes of every part. `quick` is for smoke tests; the full run meets issue 6's sizes."""

    seed: int = 0
    pairs: int = 10_000
    aligned: int = 1_000
    descent_cases: int = 3_400  # per family: 10 200 conflicting points for item 3
    nets: int = 100
    search: pairwise.SearchBudget = field(default_factory=pairwise.SearchBudget)
    descent_search: tuple[int, int] = (12, 6)
    nets_search: tuple[int, int] = (4, 5)
    logged_cap: int = 20_000
    grid: tuple[int, int] = (72, 49)
    quick: bool = False
    workers: int = 2  # 2: searches run in a second process (shipped harmonizers only)

    @classmethod
    def quick_mode(cls, seed: int = 0) -> Settings:
        return cls(seed=seed, pairs=1_000, aligned=200, descent_cases=1_000, nets=30,
                   search=pairwise.SearchBudget(generations=4, popsize=4, polish_evals=20),
                   descent_search=(4, 4), nets_search=(2, 4), logged_cap=2_000,
                   grid=(46, 31), quick=True)


# The harmonizers drawn on the figure's grid (shipped code, t = 0.5), with their titles.
GRID_TITLES = {"gh": "GH", "ghpp": "GH++ as released", "ghpp_exact": "exact GH++"}
# The two GH++ the grid compares in words (tables/theory.md) and by update direction.
GRID_GHPP = ("ghpp", "ghpp_exact")


@dataclass(frozen=True)
class Grid:
    """Shipped harmonizers on a (theta, log10 |g2|/|g1|) grid of 2-D pairs, t = 0.5."""

    theta_deg: np.ndarray
    log_ratio: np.ndarray
    min_cos: dict[str, np.ndarray]  # key -> (n_ratio, n_theta) min(cos(u, g1), cos(u, g2))
    gap_deg: np.ndarray | None  # angle between released and exact GH++ updates


@dataclass
class TheoryReport:
    settings: Settings
    results: list[CheckResult] = field(default_factory=list)
    explanations: dict[tuple[str, str], str] = field(default_factory=dict)
    grid: Grid | None = None
    logged_theta_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    logged_log_ratio: np.ndarray = field(default_factory=lambda: np.zeros(0))
    runs_note: str = ""
    harmonizers: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _fmt(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}"


def _deg(x: float) -> str:
    return f"{x:.7g}°"


def region_text(prop: Property, outs: list[Outputs], v: np.ndarray, tol: np.ndarray,
                where: str) -> str:
    """Where a property fails on a set of cases: angle and ratio ranges, harmonizer flags,
    the largest violation outside that band, and (non-conflict) the closed-form boundary."""
    o = outs[0]
    bad = ~(v <= tol)
    theta = np.degrees(o.pairs.theta)
    ratio = o.pairs.norm2 / o.pairs.norm1
    n, k = len(v), int(bad.sum())
    parts = [f"On the {where}, {k} of {n} cases violate it ({100 * k / n:.3g}%), with "
             f"θ ∈ [{_deg(theta[bad].min())}, {_deg(theta[bad].max())}] and |g2|/|g1| ∈ "
             f"[{_fmt(ratio[bad].min())}, {_fmt(ratio[bad].max())}]."]
    flagged = {f for out in outs for f in out.fallback[bad] if f}
    if flagged:
        n_flag = int(np.logical_or.reduce([out.fallback != "" for out in outs])[bad].sum())
        parts.append(f"{n_flag} of the violating cases are ones where the harmonizer reports "
                     f"its fallback ({', '.join(sorted(flagged))}).")
    below = theta < theta[bad].min()
    if below.any() and (~bad).any():
        parts.append(f"For θ < {_deg(theta[bad].min())} the largest violation is "
                     f"{_fmt(float(np.nanmax(v[below])))} {prop.spec.unit} (tolerance "
                     f"{prop.spec.tolerance}).")
    if prop.violation is direction_gap:
        finite = v[np.isfinite(v)]
        parts.append(f"The angle between the two updates has median {_fmt(np.median(finite))}° "
                     f"and 90th percentile {_fmt(np.quantile(finite, 0.9))}°; it exceeds 1° in "
                     f"{100 * np.mean(finite > 1):.3g}% and 10° in "
                     f"{100 * np.mean(finite > 10):.3g}% of the cases.")
    name = o.subject.label.split()[0]
    if prop.violation.__name__ == "conflict_with_task" and name in ("ghpp", "ghpp_exact"):
        t = o.pairs.t if o.subject.takes_t else 0.5
        m1, m2 = task_margins(name, np.cos(o.pairs.theta), ratio, t)
        predicted = (m1 < 0) | (m2 < 0)
        c1 = (m1 < 0)[bad].mean()
        c2 = (m2 < 0)[bad].mean()
        parts.append(f"The update conflicts with g1 in {100 * c1:.3g}% and with g2 in "
                     f"{100 * c2:.3g}% of the violating cases; the closed-form conflict "
                     f"boundary (ghuda.theory.reference.task_margins) predicts the shipped "
                     f"outcome on {100 * np.mean(predicted == bad):.4g}% of all cases.")
    return " ".join(parts)


def grid_pairs(settings: Settings) -> tuple[np.ndarray, np.ndarray, Pairs]:
    n_theta, n_ratio = settings.grid
    half = 45.0 / n_theta
    thetas = np.linspace(90.0 + half, 180.0 - half, n_theta)
    ratios = np.linspace(-3.0, 3.0, n_ratio)
    tt, rr = np.meshgrid(thetas, ratios)
    return thetas, ratios, make_pairs(tt.ravel(), 1.0, 10.0 ** rr.ravel(), dim=2,
                                      seed=settings.seed)


def compute_grid(settings: Settings, subjects: dict[str, Subject]) -> Grid:
    thetas, ratios, pairs = grid_pairs(settings)
    shape = (len(ratios), len(thetas))
    outs = pairwise.evaluate_all(set(GRID_TITLES), subjects, pairs)
    min_cos = {k: smallest_task_cosine(o).reshape(shape) for k, o in outs.items()}
    gap = (direction_gap(*(outs[k] for k in GRID_GHPP)).reshape(shape)
           if set(GRID_GHPP) <= outs.keys() else None)
    return Grid(thetas, ratios, min_cos, gap)


def grid_text(grid: Grid) -> list[str]:
    """Conflict regions of the released and exact GH++ on the grid (shipped code, t = 0.5)."""
    lines = []
    unit = np.argmin(np.abs(grid.log_ratio))
    for key in GRID_GHPP:
        if key not in grid.min_cos:
            continue
        title = GRID_TITLES[key]
        conflict = grid.min_cos[key] < 0
        frac = 100 * conflict.mean()
        at_one = grid.theta_deg[conflict[unit]]
        first = (f"from θ ≈ {_fmt(at_one.min())}° on" if at_one.size else "nowhere")
        cols = np.flatnonzero(conflict.any(axis=0))
        lowest = (f"the smallest conflicting angle is θ ≈ {_fmt(grid.theta_deg[cols[0]])}° "
                  f"(at |g2|/|g1| = 10^{_fmt(grid.log_ratio[conflict[:, cols[0]]][0])})"
                  if cols.size else "no angle conflicts")
        lines.append(f"- {title}: the update conflicts with g1 or g2 on {frac:.3g}% of the "
                     f"(θ, log10 |g2|/|g1|) grid; at equal norms {first}; {lowest}.")
    if grid.gap_deg is not None:
        g = grid.gap_deg
        lines.append(f"- Released vs exact GH++ update direction: median {_fmt(np.median(g))}°,"
                     f" max {_fmt(g.max())}° over the grid; at equal norms at most "
                     f"{_fmt(g[unit].max())}°.")
    return lines


Progress = Callable[[str], None]


def searches(settings: Settings, subjects: dict[str, Subject], make: weighted.MakeFn | None
             ) -> dict[str, list[CheckResult]]:
    """The self-contained parts: adversarial pair searches (one per property, in order), the
    weighted-loss equivalence (2b) and the descent bound (3)."""
    seed = settings.seed
    out: dict[str, list[CheckResult]] = {"adversarial": [], "2b": [], "3": []}
    for i, p in enumerate(properties()):
        out["adversarial"].append(
            pairwise.adversarial_part(p, subjects, seed + 100 + i, settings.search))
    for name in weighted.NAMES:
        out["2b"].append(weighted.random_part(name, settings.nets, seed, make=make))
        out["2b"].append(weighted.adversarial_part(name, seed, *settings.nets_search, make=make))
    for family in descent.FAMILIES:
        gh = subjects.get("gh")
        out["3"].append(descent.random_part(family, gh, settings.descent_cases, seed))
        out["3"].append(descent.adversarial_part(family, gh, seed, *settings.descent_search))
    return out


def _shipped_searches(settings: Settings) -> dict[str, list[CheckResult]]:
    """`searches` on the shipped harmonizers, in a worker process (one thread)."""
    import torch

    torch.set_num_threads(1)
    return searches(settings, shipped_subjects(), None)


def run_checks(settings: Settings, subjects: dict[str, Subject] | None = None,
               runs: list[Path] | None = None, make: weighted.MakeFn | None = None,
               progress: Progress | None = None) -> TheoryReport:
    """Every check of issue 6 on the shipped harmonizers (or on injected ones).

    With `settings.workers` = 2 and the shipped harmonizers, `searches` runs in a second
    process (spawned, so no thread pool is forked) while this one does the sampled parts;
    the results do not depend on it (every part has its own seed).
    """
    say = progress or (lambda _msg: None)
    runs = runs or []
    history = logged.load(logged.find_runs(runs))  # bad input fails before any work starts
    background = None
    if settings.workers > 1 and subjects is None and make is None:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        background = pool.submit(_shipped_searches, settings)
        pool.shutdown(wait=False)
    subjects = shipped_subjects() if subjects is None else subjects
    report = TheoryReport(settings=settings, harmonizers=sorted(subjects))
    seed = settings.seed
    clock = time.perf_counter(), time.process_time()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter(), time.process_time()
        report.timings[name] = now[0] - clock[0]
        say(f"theory: {name} done ({now[0] - clock[0]:.1f} s wall, "
            f"{now[1] - clock[1]:.1f} s CPU in this process)")
        clock = now

    props = properties()
    sampled = {"conflict": sample_pairs(settings.pairs, seed),
               "aligned": sample_pairs(settings.aligned, seed + 1, conflicting=False)}
    outputs = {dom: pairwise.evaluate_all({k for p in props if p.domain == dom
                                           for k in p.subjects}, subjects, pairs)
               for dom, pairs in sampled.items()}
    keys = {k for p in props if p.key in LOGGED_KEYS for k in p.subjects}
    lap("random pairs evaluated")

    logged_out: dict[str, Outputs] = {}
    if len(history):
        lp, report.runs_note = logged.conflicting_pairs(history, settings.logged_cap, seed)
        if len(lp):
            logged_out = pairwise.evaluate_all(keys, subjects, lp)
            report.logged_theta_deg = np.degrees(lp.theta)
            report.logged_log_ratio = np.log10(lp.norm2 / lp.norm1)
    elif not runs:
        report.runs_note = "no --runs directory given, so no logged pairs were checked"
    elif not history.runs:
        report.runs_note = (f"no run folders (history.jsonl) under "
                            f"{', '.join(str(r) for r in runs)}")
    else:
        report.runs_note = f"{len(history.runs)} run folder(s) found but no logged pairs"
    lap("logged runs loaded")

    by_key: dict[str, list[CheckResult]] = {}
    for p in props:
        by_key.setdefault(p.key, []).append(
            _sampled(report, p, outputs[p.domain], subjects, "random", "random cases"))
        if p.key in LOGGED_KEYS:
            by_key[p.key].append(_logged_part(p, logged_out, subjects, report))
    by_key["G3"] = [pairwise.degenerate_part(k, subjects, seed)
                    for k in ("gh", "pcgrad", "ghpp", "ghpp_exact")]
    by_key["L"] = [logged.weights_part(history, report.runs_note)]
    lap("sampled parts")
    if GRID_TITLES.keys() & subjects.keys():
        report.grid = compute_grid(settings, subjects)
    lap("figure grid")

    extra = background.result() if background else searches(settings, subjects, make)
    lap("adversarial searches, weighted loss, descent bound")
    for p, adversarial in zip(props, extra["adversarial"], strict=True):
        rows = by_key[p.key]
        rows.insert(rows.index(next(r for r in rows if r.part == "random"
                                    and r.subject == adversarial.subject)) + 1, adversarial)
    by_key["2b"], by_key["3"] = extra["2b"], extra["3"]
    order = sorted(dict.fromkeys([p.key for p in props] + ["2b", "3", "G3", "L"]),
                   key=_sort_key)
    report.results = [r for k in order for r in by_key.get(k, [])]
    return report


def _sort_key(key: str) -> tuple[int, str]:
    return (0 if key[0].isdigit() else 1, key)


def _logged_part(p: Property, logged_out: dict[str, Outputs], subjects: dict[str, Subject],
                 report: TheoryReport) -> CheckResult:
    if not logged_out:
        return not_run(p.spec, "logged runs", label(p.subjects, subjects), report.runs_note)
    result = _sampled(report, p, logged_out, subjects, "logged runs",
                      "pairs logged by training runs")
    return CheckResult(**{**result.__dict__, "note": "; ".join(
        x for x in (report.runs_note, result.note) if x)})


def _sampled(report: TheoryReport, p: Property, outputs: dict[str, Outputs],
             subjects: dict[str, Subject], part: str, where: str) -> CheckResult:
    """A sampled part; a failing one also gets its region explained in the report."""
    s = pairwise.sampled(p, outputs, part, subjects)
    if s.result.verdict == "fails":
        key = (p.key, s.result.subject)
        v = np.where(np.isnan(s.violation), np.inf, s.violation)
        text = region_text(p, s.outs, v, s.tolerance, where)
        report.explanations[key] = " ".join(
            x for x in (report.explanations.get(key), text) if x)
    return s.result
