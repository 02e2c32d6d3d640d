"""tables/claims.md: a verdict for every claim of the paper (issue 28), computed from the other
generated tables by stated rules, and what the artifact found about the released code.

The claims (REFERENCE 1): the two task gradients conflict during UDA training; GH turns the
obtuse angle acute; GH++ turns it into a right angle with the least deviation; the dynamically
weighted loss has the harmonized gradient; GH / GH++ improve each popular baseline and a recent
state-of-the-art model (SSRT); they carry over to retrieval and detection; their cost. Each
verdict is one of `VERDICTS`, computed by a rule (`ghuda.report.verdicts`) from cells of the
tables the pipeline wrote (`Inputs.texts`: the Markdown of each table, parsed by
`ghuda.report.render.from_markdown`),
so a changed cell changes the verdict. Hardware and time come from the run folders
(runs.csv ``device``, ``threads``, ``wall_s``) and Snakemake's benchmark files, never typed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ghuda import methods
from ghuda.methods.release import NOT_REPRODUCED, RELEASE_REPO, RUNS_NOT
from ghuda.pipeline.grid import run_config_for
from ghuda.report.lookup import dataset_table_stems, method_label, method_order, row_variants
from ghuda.report.render import DASH, Table, from_markdown, to_latex, to_markdown
from ghuda.report.verdicts import (
    CONFLICT_RULE,
    COST_RULE,
    DELTA_RULE,
    FAILS,
    HOLDS,
    RULES,
    THEORY_RULE,
    UNTESTABLE,
    VERDICTS,
    VERIFY_RULE,
    conflict_verdict,
    cost_verdict,
    delta_verdict,
    number,
    rule_name,
    theory_verdict,
)

HARMONIZERS = {"gh": "GH", "ghpp": "GH++"}  # the paper's two harmonizers, as released
SOTA_METHOD = "ssrt"  # REFERENCE 1.4: the recent state-of-the-art model the paper extends
DEFAULT_CONFIGFILE = "configs/default.yaml"
CLAIM_COLUMNS = ["Claim (the paper's terms)", "Verdict", "Measured", "Rule", "Evidence",
                 "Command", "Hardware", "Time", "Scale"]

# (claim, theory.md property ids) — REFERENCE 1.2 / 1.3
THEORY_CLAIMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("GH turns the obtuse angle between the two task gradients acute (h1 ⊥ g2, h2 ⊥ g1, "
     "angle(h1, h2) = 180° − θ, the update conflicts with neither task)", ("1a", "1b", "1d")),
    ("GH++ (exact, as the paper describes it) turns the angle into a right angle, each "
     "gradient deviating least", ("4a", "4b", "4e")),
    ("GH++ as released (the weights behind the paper's numbers) removes the conflict as the "
     "exact rotation does", ("5a", "5b")),
    ("The dynamically weighted loss w1·L1 + w2·L2 has the harmonized gradient (weights in "
     "closed form)", ("2b", "1e", "5d")),
    ("GH equals PCGrad for two tasks and inherits its descent bound", ("2a", "3")),
)


@dataclass(frozen=True)
class Claim:
    """One row of the claims table (`CLAIM_COLUMNS`)."""

    claim: str
    verdict: str
    measured: str
    rule: str
    evidence: str
    command: str
    hardware: str
    time: str
    scale: str

    def cells(self) -> list[str]:
        """The row; the rule by its name (the table's notes state each rule in full)."""
        return [self.claim, self.verdict, self.measured, rule_name(self.rule), self.evidence,
                self.command, self.hardware, self.time, self.scale]


@dataclass
class Inputs:
    """What the claims are computed from: the config, the Markdown of each generated table by
    stem (``theory``, ``extensions``, ``verify``, ``cost``, ``conflict``, the dataset tables),
    the aggregated runs, measured seconds of report steps (``theory``) and where things are."""

    config: Mapping[str, Any]
    texts: Mapping[str, str]
    runs: pd.DataFrame
    tables_dir: str = "tables"
    figures_dir: str = "figures"
    configfile: str = DEFAULT_CONFIGFILE
    paper_datasets: Sequence[str] = ()
    seconds: Mapping[str, float] = field(default_factory=dict)
    extension_devices: Sequence[str] = ()

    def tables(self, stem: str) -> list[Table]:
        return from_markdown(self.texts.get(stem, ""))

    def command(self, stem: str) -> str:
        option = "" if self.configfile == DEFAULT_CONFIGFILE else f" --configfile {self.configfile}"
        return f"`snakemake --cores all{option} {self.tables_dir}/{stem}.md`"

    def evidence(self, stem: str, where: str) -> str:
        return f"`{self.tables_dir}/{stem}.md`, {where}"


# ---------------------------------------------------------------- look-ups


def method_rows(table: Table, method: str) -> dict[str, dict[str, str]]:
    """A dataset table's rows of `method` (its baseline row and the rows below it), by the
    first cell (the variant's label; the method's label for the baseline)."""
    labels = {method_label(m) for m in methods.names()}
    out: dict[str, dict[str, str]] = {}
    inside = False
    for row in table.rows:
        if row[0] in labels:
            inside = row[0] == method_label(method)
        if inside:
            out.setdefault(row[0], dict(zip(table.columns, row, strict=True)))
    return out


def paper_variant(config: Mapping[str, Any], harmonizer: str) -> str | None:
    """The row variant that runs `harmonizer` as released (no other option than GH++'s
    t = 0.5, no method switch), or None."""
    for variant in row_variants(config):
        spec = config["variants"][variant]
        name = spec["harmonizer"] if isinstance(spec["harmonizer"], str) else None
        if (name == harmonizer and not spec.get("method_params")
                and dict(spec.get("options") or {}) in ({}, {"t": 0.5})):
            return variant
    return None


def paper_methods() -> list[str]:
    """Methods the release trains with GH (a released script; `Release.script`)."""
    return [m for m in methods.names() if methods.get(m).RELEASE.script is not None]


def run_cost(inputs: Inputs, frame: pd.DataFrame) -> tuple[str, str]:
    """(hardware, time) of runs.csv rows: devices and threads; summed wall time."""
    if frame.empty:
        return DASH, DASH
    devices = sorted({str(d) for d in frame.get("device", pd.Series(dtype=str)).dropna()})
    threads = sorted({int(t) for t in frame.get("threads", pd.Series(dtype=float)).dropna()})
    wall = pd.to_numeric(frame.get("wall_s", pd.Series(dtype=float)), errors="coerce").sum()
    hardware = (", ".join(devices) or "not recorded") + (
        f", {'/'.join(map(str, threads))} thread(s) per run" if threads else "")
    return hardware, f"{wall / 60:.1f} min in {len(frame)} runs (sum of run wall times)"


def scale(inputs: Inputs, dataset: str, method: str, variant: str) -> str:
    """The dataset, tasks, backbone and steps a row was tested at, and the paper's datasets."""
    ds = inputs.config["datasets"][dataset]
    run = run_config_for(inputs.config, dataset, ds["tasks"][0], method, variant, 0)
    model = run["model"]
    text = (f"{ds.get('label', dataset)}: {len(ds['tasks'])} task(s), {model['backbone']} "
            f"{'pretrained' if model.get('pretrained') else 'from scratch'}, "
            f"{run['train']['steps']} steps")
    return text + paper_scale(inputs)


def paper_scale(inputs: Inputs) -> str:
    return f"; paper: {', '.join(inputs.paper_datasets)}" if inputs.paper_datasets else ""


# ---------------------------------------------------------------- the claims


def conflict_claims(inputs: Inputs) -> list[Claim]:
    """The two gradients conflict during training: one row per dataset and method."""
    tables = inputs.tables("conflict")
    if not tables:
        return []
    table, config = tables[0], inputs.config
    baseline = config["variants"][row_variants(config)[0]]["label"]
    out = []
    for dataset in dataset_table_stems(config):
        label = config["datasets"][dataset].get("label", dataset)
        for method in method_order(config):
            row = next((dict(zip(table.columns, r, strict=True)) for r in table.rows
                        if r[:3] == [label, method_label(method), baseline]), None)
            if row is None:
                continue
            verdict, measured = conflict_verdict(row["conflicting steps (%) median"])
            frame = runs_of(inputs, dataset, method, [row_variants(config)[0]])
            out.append(Claim(
                f"The source and transfer gradients conflict (obtuse angle) during "
                f"{method_label(method)} training ({label})", verdict,
                f"{measured} (range {row['min–max (%)']} over {row['runs']} runs)",
                CONFLICT_RULE, inputs.evidence("conflict", f"row {label} / "
                                               f"{method_label(method)} / {baseline}; "
                                               f"`{inputs.figures_dir}/conflict_over_training"
                                               f".png`"),
                inputs.command("conflict"), *run_cost(inputs, frame),
                scale(inputs, dataset, method, row_variants(config)[0])))
    return out


def runs_of(inputs: Inputs, dataset: str, method: str, variants: Sequence[str]) -> pd.DataFrame:
    runs = inputs.runs
    if runs.empty:
        return runs
    return runs[(runs["dataset"] == dataset) & (runs["method"] == method)
                & runs["variant"].isin(list(variants))]


def theory_claims(inputs: Inputs) -> list[Claim]:
    """The geometric and weighted-loss claims, from theory.md's Summary table."""
    tables = inputs.tables("theory")
    rows: dict[str, list[list[str]]] = {}
    for row in tables[0].rows if tables else []:
        rows.setdefault(row[0], []).append(row)
    seconds = inputs.seconds.get("theory")
    time = f"{seconds / 60:.1f} min (`ghuda theory`)" if seconds else "not recorded"
    out = []
    for claim, ids in THEORY_CLAIMS:
        verdict, measured = theory_verdict(rows, ids)
        cases = sum(int(number(r[3])) for i in ids for r in rows.get(i, []))
        out.append(Claim(claim, verdict, measured, THEORY_RULE,
                         inputs.evidence("theory", f"Summary rows {', '.join(ids)}; "
                                         f"`{inputs.figures_dir}/theory_violations.png`"),
                         inputs.command("theory"), "CPU (float64 numpy / torch)", time,
                         f"numerical: {cases} random, adversarial and logged gradient pairs "
                         "or networks (theory.md, Cases)"))
    return out


def baseline_claims(inputs: Inputs) -> list[Claim]:
    """GH / GH++ improve each popular baseline, and SSRT: one row per dataset, method and
    harmonizer of the config's main tables; the release's methods not run: untestable."""
    config = inputs.config
    baseline = row_variants(config)[0]
    out, seen = [], set()
    for dataset in dataset_table_stems(config):
        tables = inputs.tables(dataset)
        label = config["datasets"][dataset].get("label", dataset)
        for method in method_order(config):
            rows = method_rows(tables[0], method) if tables else {}
            for harmonizer, name in HARMONIZERS.items():
                variant = paper_variant(config, harmonizer)
                row = rows.get(config["variants"][variant]["label"]) if variant else None
                if row is None:
                    continue
                seen.add((method, harmonizer))
                verdict, measured = delta_verdict(row["Δ Avg [CI]"], row.get("div.", "0/0"))
                frame = runs_of(inputs, dataset, method, [baseline, variant])
                out.append(Claim(
                    f"{improves(name, method)} ({label})", verdict,
                    f"{measured}, n = {row['n']} pairs", DELTA_RULE,
                    inputs.evidence(dataset, f"row {method_label(method)} {row['Method']}, "
                                             "column Δ Avg [CI]"),
                    inputs.command(dataset), *run_cost(inputs, frame),
                    scale(inputs, dataset, method, variant)))
    for method in paper_methods():
        for harmonizer, name in HARMONIZERS.items():
            if (method, harmonizer) not in seen:
                out.append(Claim(improves(name, method), UNTESTABLE,
                                 f"{method_label(method)} + {name} is not in this config's "
                                 "main tables", DELTA_RULE, DASH, DASH, DASH, DASH,
                                 paper_scale(inputs).lstrip("; ")))
    return out


def improves(harmonizer: str, method: str) -> str:
    """The claim 'GH improves CDAN+E' in the paper's terms (SSRT: the recent SOTA model)."""
    what = "a recent state-of-the-art model, " if method == SOTA_METHOD else ""
    return f"{harmonizer} improves {what}{method_label(method)}"


def extension_claims(inputs: Inputs) -> list[Claim]:
    """GH / GH++ carry over to retrieval and detection: one row per task and harmonizer."""
    if not inputs.config.get("extensions"):
        return [Claim("GH / GH++ carry over to image retrieval with text feedback and to "
                      "object detection", UNTESTABLE, "this config has no `extensions` entry",
                      DELTA_RULE, DASH, DASH, DASH, DASH, paper_scale(inputs).lstrip("; "))]
    out = []
    devices = ", ".join(inputs.extension_devices) or "not recorded"
    for table in inputs.tables("extensions"):
        delta = next((c for c in table.columns if c.startswith("Δ ")), None)
        if delta is None:
            continue
        task = table.caption.split(":")[0]
        runs = [number(r[table.columns.index("div.")].split("/")[-1]) for r in table.rows]
        seconds = [number(r[table.columns.index("s / run")]) for r in table.rows]
        minutes = sum(n * s for n, s in zip(runs, seconds, strict=True)) / 60
        for row in table.rows[1:]:
            cells = dict(zip(table.columns, row, strict=True))
            verdict, measured = delta_verdict(cells[delta], cells["div."])
            out.append(Claim(
                f"{cells['Variant'].lstrip('+')} carries over to {task}", verdict,
                f"{measured} ({delta.split(' [')[0]}), n = {cells['n']} pairs", DELTA_RULE,
                inputs.evidence("extensions", f"table \"{task}\", row {cells['Variant']}"),
                inputs.command("extensions"), devices,
                f"{minutes:.1f} min for the task's runs (s / run × runs)",
                f"{task.split(' on ')[-1]} (embedded benchmark){paper_scale(inputs)}"))
    return out


def cost_claims(inputs: Inputs) -> list[Claim]:
    """Their cost: the cost table's rows of each harmonizer."""
    tables = inputs.tables("cost")
    if not tables:
        return []
    table, config = tables[0], inputs.config
    out = []
    for harmonizer, name in HARMONIZERS.items():
        variant = paper_variant(config, harmonizer)
        if variant is None:
            continue
        label = config["variants"][variant]["label"]
        rows = [dict(zip(table.columns, r, strict=True)) for r in table.rows if r[2] == label]
        if not rows:
            continue
        verdict, measured = cost_verdict(rows)
        frame = inputs.runs[inputs.runs["variant"] == variant] if not inputs.runs.empty \
            else inputs.runs
        out.append(Claim(
            f"{name} costs at most one extra backward pass per step (two passes; the released "
            "weighted-loss procedure takes three)", verdict, measured, COST_RULE,
            inputs.evidence("cost", f"rows {label}, columns extra bwd and × baseline; "
                                    f"`{inputs.figures_dir}/step_cost.png`"),
            inputs.command("cost"), *run_cost(inputs, frame),
            scale(inputs, dataset_table_stems(config)[0], method_order(config)[-1], variant)))
    return out


def verify_claims(inputs: Inputs) -> list[Claim]:
    """The published accuracies, compared within the config's tolerance (verify.md)."""
    if "verify" not in inputs.texts:
        return [Claim("The published accuracies are reproduced", UNTESTABLE, "no verify.md",
                      VERIFY_RULE, DASH, inputs.command("verify"), DASH, DASH,
                      paper_scale(inputs).lstrip("; "))]
    text = inputs.texts["verify"]
    counts = dict(re.findall(r"(match|differs): (\d+)", text))
    match, differs = int(counts.get("match", 0)), int(counts.get("differs", 0))
    verdict = (UNTESTABLE if match + differs == 0 else FAILS if differs else HOLDS)
    measured = (f"{match} of {match + differs} compared numbers match" if match + differs
                else "no published number for this config's datasets")
    return [Claim("The published accuracies are reproduced", verdict, measured, VERIFY_RULE,
                  inputs.evidence("verify", "verdict line"), inputs.command("verify"),
                  *run_cost(inputs, inputs.runs), paper_scale(inputs).lstrip("; "))]


CLAIM_GROUPS: tuple[Callable[[Inputs], list[Claim]], ...] = (
    conflict_claims, theory_claims, baseline_claims, extension_claims, cost_claims,
    verify_claims)


def claims_table(inputs: Inputs) -> Table:
    """One row per claim (`CLAIM_GROUPS`, in the paper's order), each with its verdict."""
    table = Table(caption=f"Claims of the paper and their verdicts (config "
                          f"`{inputs.config['name']}`)",
                  columns=CLAIM_COLUMNS, align="l" * len(CLAIM_COLUMNS), label="tab:claims")
    for group in CLAIM_GROUPS:
        for claim in group(inputs):
            table.add(claim.cells())
        table.end_group()
    verdicts = [r[1] for r in table.rows]
    table.notes += [
        "Verdicts: " + ", ".join(f"{v}: {verdicts.count(v)}" for v in VERDICTS) + ".",
        *[f"Rule {rule.replace(':', ' —', 1)}." for rule in RULES],
        "Each verdict is computed from the cells named under Evidence by the rule beside it "
        "(ghuda.report.claims); regenerating a table regenerates its verdicts. Hardware and "
        "time: the devices and summed wall times recorded by the runs behind the row "
        "(metrics.json cost), or the Snakemake benchmark of the step.",
        "Scale: what the row was tested at; the paper's claims are about its datasets, so a "
        "verdict at a smaller scale is evidence about the method at that scale, not a "
        "verdict on the paper's tables."]
    return table


def release_table() -> Table:
    """What the artifact found about the released code: each audited item that does not run
    as shipped or that ghuda does not reproduce (`ghuda.methods.release`), once per item."""
    table = Table(caption=f"What a user of the release ({RELEASE_REPO}) must know",
                  columns=["Finding", "What the release does", "File:line", "Methods",
                           "What ghuda does"], align="lllll", label="tab:release")
    found: dict[tuple[str, str], tuple[Any, list[str]]] = {}
    for name in methods.names():
        for item in methods.get(name).RELEASE.items:
            if item.status in (RUNS_NOT, NOT_REPRODUCED):
                found.setdefault((item.item, item.source), (item, []))[1].append(
                    method_label(name))
    for (_, source), (item, names) in found.items():
        status = "does not run as shipped" if item.status == RUNS_NOT else "not reproduced"
        table.add([f"{item.item} ({status})", item.released, source, ", ".join(names),
                   f"{item.alternative} ({item.why})"])
    table.notes.append("From the release records (ghuda.methods.release, each method's "
                       "RELEASE.items; tables/fidelity.md lists every audited item).")
    return table


def claims_markdown(inputs: Inputs) -> str:
    """tables/claims.md: the claims table, then the release findings."""
    return to_markdown(claims_table(inputs)) + "\n" + to_markdown(release_table())


def claims_latex(inputs: Inputs) -> str:
    return to_latex(claims_table(inputs)) + "\n" + to_latex(release_table())


def verdict_summary(claims_md: str) -> str:
    """The README's and the landing page's excerpt of a claims.md: claim, verdict, measured."""
    table = from_markdown(claims_md)[0]
    short = Table(caption=table.caption, columns=table.columns[:3], align="lll")
    for row in table.rows:
        short.add(row[:3])
    return to_markdown(short)


def read_inputs(config: Mapping[str, Any], tables_dir: str | os.PathLike[str],
                runs: pd.DataFrame, **where: Any) -> Inputs:
    """`Inputs` from the Markdown files under `tables_dir` (every table of the config and the
    step outputs theory, verify, extensions that exist there)."""
    from ghuda.report.outputs import table_stems

    folder = Path(tables_dir)
    stems = [*table_stems(config), "theory", "verify", "extensions"]
    texts = {s: (folder / f"{s}.md").read_text(encoding="utf-8") for s in stems
             if (folder / f"{s}.md").is_file()}
    return Inputs(config=config, texts=texts, runs=runs, tables_dir=folder.as_posix(), **where)


def benchmark_seconds(path: str | os.PathLike[str] | None) -> float | None:
    """Wall seconds of a Snakemake benchmark file (its ``s`` column); None if absent."""
    if path is None or not Path(path).is_file():
        return None
    return float(pd.read_csv(path, sep="\t")["s"].sum())


def extension_devices(results: str | os.PathLike[str]) -> list[str]:
    """Devices recorded by the extension runs under `results` (metrics.json cost.device)."""
    found = set()
    for path in sorted(Path(results).glob("extensions/**/metrics.json")):
        device = (json.loads(path.read_text(encoding="utf-8")).get("cost") or {}).get("device")
        if device:
            found.add(str(device))
    return sorted(found)
