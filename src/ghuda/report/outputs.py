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
from typing import Any

from ghuda.registry import Registry
from ghuda.report.lookup import dataset_table_stems

Builder = Callable[..., Any]
Condition = Callable[[Mapping[str, Any]], bool]

# Tables written by pipeline steps other than `ghuda report tables` (each its own Snakemake rule:
# workflow/rules/report.smk, extensions.smk), in the index's order: file name and index title;
# the index lists those that exist.
STEP_TABLES: tuple[tuple[str, str], ...] = (
    ("claims.md", "Claims of the paper and their verdicts"),
    ("theory.md", "Theory checks (ghuda theory)"),
    ("verify.md", "Verification"),
    ("compute_budget.md", "Compute budget of the paper config"),
    ("extensions.md", "GH / GH++ beyond classification: retrieval and detection (issue 16)"),
)

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


def table_stems(config: Mapping[str, Any]) -> list[str]:
    """Stems of the tables `ghuda report tables` writes (each as .md and .tex)."""
    return [*dataset_table_stems(config), *builders(TABLE_BUILDERS, config)]


def table_names(config: Mapping[str, Any]) -> list[str]:
    return [f"{stem}.{ext}" for stem in table_stems(config) for ext in ("md", "tex")]


def figure_names(config: Mapping[str, Any]) -> list[str]:
    """Stems of the figures (each as .png and .pdf)."""
    return list(builders(FIGURE_BUILDERS, config))
