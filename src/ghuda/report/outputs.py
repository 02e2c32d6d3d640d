"""The file names the table and figure builders write for a config (also the Snakefile's
declared outputs, so the two cannot drift apart)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FIGURES = (
    "conflict_over_training",
    "angle_histograms",
    "accuracy_over_training",
    "weights_vs_angle",
    "step_cost",
)


def dataset_table_stems(config: Mapping[str, Any]) -> list[str]:
    """One table per datasets entry that a grid block trains, in config order (a ladder rung
    that no block lists yet has no runs, hence no table)."""
    trained = {d for block in config["grid"] for d in block.get("datasets", config["datasets"])}
    return [d for d in config["datasets"] if d in trained]


def table_stems(config: Mapping[str, Any]) -> list[str]:
    """Stems of the tables `ghuda report tables` writes (each as .md and .tex)."""
    stems = [*dataset_table_stems(config), "protocols", "cost"]
    if config.get("tables", {}).get("t_sweep"):
        stems.append("ghpp_t_sweep")
    if config.get("tables", {}).get("ladder"):
        stems.append("ladder")
    return stems


def table_names(config: Mapping[str, Any]) -> list[str]:
    return [f"{stem}.{ext}" for stem in table_stems(config) for ext in ("md", "tex")]


def figure_names(config: Mapping[str, Any]) -> list[str]:
    """Stems of the figures (each as .png and .pdf)."""
    names = list(FIGURES)
    if config.get("features"):
        names.append("tsne")
    if config.get("tables", {}).get("t_sweep"):
        names.append("ghpp_t_sensitivity")
    if config.get("tables", {}).get("ladder"):
        names.append("ladder_mechanism")
    return names
