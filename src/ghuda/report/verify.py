"""Compare reproduced numbers with published ones (configs/reported.yaml).

For every (dataset, method, variant) the config trains, and for each task and the average,
the reproduced mean over seeds under ``verify.protocol`` (default oracle: published numbers
select on target labels, REFERENCE 1.6) is compared with the published number when one is
recorded: MATCH if the absolute difference is at most ``verify.tolerance_pp`` percentage
points, DIFFERS otherwise. Rows without a published number say NOT RECORDED; datasets that no
paper can report (digits-mini) say so once instead of listing rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ghuda.pipeline.config import settings
from ghuda.pipeline.grid import registered_dataset
from ghuda.report.frames import seed_means
from ghuda.report.lookup import method_label, method_order, metric_column, task_label
from ghuda.report.render import DASH, Table, fmt, to_markdown
from ghuda.report.reported import AVG, ReportedNumbers
from ghuda.report.stats import mean_std
from ghuda.report.tables import summary_cell

MATCH, DIFFERS, NOT_RECORDED, NOT_RUN = "MATCH", "DIFFERS", "NOT RECORDED", "NOT RUN"
DIVERGED = "DIVERGED"


def verdicts(config: Mapping[str, Any], runs: pd.DataFrame, reported: ReportedNumbers
             ) -> tuple[Table, Counter, list[str]]:
    """(verdict table, verdict counts, per-dataset notes)."""
    vcfg = settings(config).verify
    protocol, tol = vcfg.protocol, float(vcfg.tolerance_pp)
    table = Table(caption=(f"Reproduced (protocol `{protocol}`, mean ± std over seeds) vs "
                           f"published; tolerance {tol:g} pp"),
                  columns=["Dataset", "Method", "Variant", "Task", "reproduced", "published",
                           "difference", "verdict", "source"],
                  align="llllrrrll", label="tab:verify")
    counts: Counter = Counter()
    notes: list[str] = []
    for dataset, ds in config["datasets"].items():
        label = ds.get("label", dataset)
        registered = registered_dataset(config, dataset)  # published numbers are per dataset
        if not reported.published(registered):
            note = reported.dataset_note(registered) or "no paper reports this dataset"
            notes.append(f"{label}: no published numbers exist ({note}); nothing to verify.")
            continue
        col = metric_column(config, dataset, protocol)
        data = runs[runs["dataset"] == dataset]
        keys = [(m, v) for m in method_order(config) for v in config["variants"]
                if not data[(data["method"] == m) & (data["variant"] == v)].empty]
        keys += [(k[1], k[2]) for k, _ in reported.entries()
                 if k[0] == registered and (k[1], k[2]) not in keys]
        for method, variant in keys:
            vdata = data[(data["method"] == method) & (data["variant"] == variant)]
            for task in [*ds["tasks"], AVG]:
                entry = reported.get(registered, method, variant, task)
                if task != AVG and entry is None:
                    continue  # per-task rows only where a per-task number is recorded
                if vdata.empty:
                    values = pd.Series(dtype=float)
                elif task == AVG:
                    values = seed_means(vdata, col)
                else:
                    values = vdata[vdata["task"] == task][col]
                mean, _ = mean_std(values.dropna().to_numpy())
                pub = None if entry is None else entry.value
                if values.empty:
                    verdict = NOT_RUN
                elif values.isna().all():
                    verdict = DIVERGED
                elif pub is None:
                    verdict = NOT_RECORDED
                else:
                    verdict = MATCH if abs(mean - pub) <= tol else DIFFERS
                counts[verdict] += 1
                source = DASH if entry is None else entry.citation or entry.source
                if entry is not None and entry.backbone:
                    backbones = set(vdata["backbone"].dropna()) if not vdata.empty else set()
                    if backbones and entry.backbone not in backbones:
                        source += f" (published with {entry.backbone}; run: "
                        source += f"{', '.join(sorted(backbones))})"
                table.add([label, method_label(method), config["variants"].get(
                    variant, {"label": variant})["label"],
                    "Avg" if task == AVG else task_label(task),
                    DASH if values.empty else summary_cell(values, None),
                    DASH if pub is None else fmt(pub, 2),
                    DASH if pub is None or np.isnan(mean) else fmt(mean - pub, signed=True),
                    verdict, source])
            table.end_group()
    return table, counts, notes


MCD_GH_NOTE = (
    "MCD: the released mcd/mcd.py (fuxianghuang1/GH@7684eaf) declares `--GH` with "
    "`type=bool, default=True` (lines 431-434; argparse turns any given value into True) and "
    "tests its GH branch before the GH++ one (lines 228-249), so the README's \"GH++\" MCD "
    "command also runs GH: published MCD \"+GH++\" numbers are GH numbers.")


def protocol_notes(config: Mapping[str, Any]) -> list[str]:
    """Under which protocol the reproduced numbers were trained and selected, and the MCD
    flag of the release (REFERENCE 1.5b)."""
    holdout = (config.get("run_defaults") or {}).get("dataset", {}).get("source_holdout", True)
    protocol = settings(config).verify.protocol
    train = ("on the source training split (the 10 % source hold-out kept for `source_val`, "
             "`dataset.source_holdout: true`; the release trains on the whole source)"
             if holdout else "on the whole source domain, as released")
    return [f"Reproduced numbers: protocol `{protocol}`, trained {train}; the other switches "
            "as in tables/fidelity.md.", MCD_GH_NOTE]


def verdict_markdown(config: Mapping[str, Any], table: Table, counts: Counter,
                     notes: list[str]) -> str:
    """tables/verify.md: overall verdict, notes, and the row-by-row table."""
    compared = counts[MATCH] + counts[DIFFERS]
    if compared == 0:
        overall = ("**Verdict: nothing could be compared.** No reproduced number of this "
                   "config has a published counterpart recorded in the reported-numbers file.")
    else:
        overall = (f"**Verdict: {counts[MATCH]} of {compared} compared numbers match** "
                   f"within {settings(config).verify.tolerance_pp:g} pp; "
                   f"{counts[DIFFERS]} differ.")
    tail = ", ".join(f"{k}: {counts[k]}" for k in (MATCH, DIFFERS, DIVERGED, NOT_RECORDED,
                                                     NOT_RUN)
                     if counts[k])
    lines = [f"# Verification of config `{config['name']}`", "", overall]
    if tail:
        lines += ["", f"Rows by verdict: {tail}."]
    lines += [""] + [f"- {n}" for n in [*notes, *protocol_notes(config)]]
    if table.rows:
        lines += ["", to_markdown(table)]
    return "\n".join(lines).rstrip() + "\n"
