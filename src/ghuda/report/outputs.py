"""The tables and figures of a config: their registered builders and the files they write
(also the Snakefile's declared outputs, so the two cannot drift apart).

A table or a figure is one function decorated with `register_table` or `register_figure`, in
a module of ``ghuda.report`` (found on import, `ghuda.registry`) or in a module named in
``$GHUDA_PLUGINS``. A builder takes the pipeline config and the aggregated summary
(`ghuda.report.aggregate.load_summary`: frames ``runs``, ``train``, ``eval``) and returns a
`ghuda.report.render.Table` (written as <name>.md and <name>.tex) or a matplotlib Figure
(<name>.png and <name>.pdf); `when` says which configs have it (default: every one). Names
come in registration order, a module's after those of the modules it imports. Besides them,
every trained datasets entry has its results table (`ghuda.report.tables.dataset_table`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ghuda.registry import Registry
from ghuda.report.lookup import dataset_table_stems

Builder = Callable[..., Any]
Condition = Callable[[Mapping[str, Any]], bool]

TABLE_BUILDERS: Registry[Any] = Registry("table", "ghuda.report")
FIGURE_BUILDERS: Registry[Any] = Registry("figure", "ghuda.report")


def always(config: Mapping[str, Any]) -> bool:
    """Every config has the table or figure."""
    return True


def _register(registry: Registry[Any], name: str, when: Condition,
              **attrs: Any) -> Callable[[Builder], Builder]:
    def decorate(fn: Builder) -> Builder:
        for key, value in {"when": when, **attrs}.items():
            setattr(fn, key, value)
        return registry.register(name)(fn)

    return decorate


def register_table(name: str, title: str, when: Condition = always) -> Callable[[Builder], Builder]:
    """Register a table builder as `name`; `title` is its entry in the index."""
    return _register(TABLE_BUILDERS, name, when, title=title)


def register_figure(name: str, when: Condition = always) -> Callable[[Builder], Builder]:
    """Register a figure builder as `name`; its docstring's first paragraph is its caption in
    the index."""
    return _register(FIGURE_BUILDERS, name, when)


def builders(registry: Registry[Any], config: Mapping[str, Any]) -> dict[str, Builder]:
    """The registered builders (discovered first) that `config` has, by name."""
    registry.discover()
    found = {name: registry.get(name) for name in registry.names()}
    return {name: fn for name, fn in found.items() if fn.when(config)}


def has_compute_budget(config: Mapping[str, Any]) -> bool:
    """Whether the config estimates another config's compute budget (``compute_budget``)."""
    return bool(config.get("compute_budget"))


def has_extensions(config: Mapping[str, Any]) -> bool:
    """Whether the config trains the extension tasks (``extensions``)."""
    return bool(config.get("extensions"))


@dataclass(frozen=True)
class StepOutput:
    """The files of a pipeline step other than `ghuda report tables` / `figure`: its own
    Snakemake rule (workflow/rules/report.smk, extensions.smk) writes `tables` under the
    tables folder (the first is its main table) and `figures` (each as .png and .pdf) under the
    figures folder; `title`: the index entry of its main table (None: not listed)."""

    rule: str
    title: str | None
    tables: tuple[str, ...]
    figures: tuple[str, ...] = ()
    when: Condition = always


# In the index's order. The report rule needs every one of them, so it runs last.
STEP_OUTPUTS: tuple[StepOutput, ...] = (
    StepOutput("claims", "Claims of the paper and their verdicts", ("claims.md", "claims.tex")),
    StepOutput("theory", "Theory checks (ghuda theory)", ("theory.md",),
               ("theory_violations",)),
    StepOutput("verify", "Verification", ("verify.md",)),
    StepOutput("fidelity", None, ("fidelity.md",)),
    StepOutput("compute_budget", "Compute budget of the paper config",
               ("compute_budget.md", "compute_budget_jobs.csv"), when=has_compute_budget),
    StepOutput("extension_report", "GH / GH++ beyond classification: retrieval and "
               "detection (issue 16)", ("extensions.md", "extensions.tex"),
               ("extension_conflict", "extension_weights_vs_angle"), when=has_extensions),
)


def step_outputs(config: Mapping[str, Any]) -> list[StepOutput]:
    """The step outputs `config` has."""
    return [step for step in STEP_OUTPUTS if step.when(config)]


def step_files(config: Mapping[str, Any], tables_dir: str, figures_dir: str,
               without: str | None = None) -> list[str]:
    """Paths of every step output file of `config` (the report rule's inputs beside the
    tables and figures), those of the rule `without` excepted."""
    out: list[str] = []
    for step in step_outputs(config):
        if step.rule == without:
            continue
        out += [f"{tables_dir}/{name}" for name in step.tables]
        out += [f"{figures_dir}/{name}.{ext}" for name in step.figures for ext in ("png", "pdf")]
    return out


def table_stems(config: Mapping[str, Any]) -> list[str]:
    """Stems of the tables `ghuda report tables` writes (each as .md and .tex)."""
    return [*dataset_table_stems(config), *builders(TABLE_BUILDERS, config)]


def table_names(config: Mapping[str, Any]) -> list[str]:
    return [f"{stem}.{ext}" for stem in table_stems(config) for ext in ("md", "tex")]


def figure_names(config: Mapping[str, Any]) -> list[str]:
    """Stems of the figures (each as .png and .pdf)."""
    return list(builders(FIGURE_BUILDERS, config))
