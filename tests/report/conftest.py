"""Fixtures of the report tests: the tiny config and its synthetic runs (fakeruns.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from fakeruns import REPO, tiny_config, write_runs


@pytest.fixture
def fx_config(tmp_path: Path) -> dict[str, Any]:
    return tiny_config(tmp_path / "results")


@pytest.fixture(scope="session")
def fx_written(tmp_path_factory: pytest.TempPathFactory):
    """The fixture runs (with features for DANN) written and aggregated once per session."""
    from ghuda.report.aggregate import aggregate, load_summary

    root = tmp_path_factory.mktemp("fx")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        config = tiny_config(root / "results")
        write_runs(config, features=True)
        aggregate(config, root / "summary")
        return config, load_summary(root / "summary")


@pytest.fixture
def fx_summary(fx_written):
    """(config, summary frames) of the fixture runs; copies, free to modify."""
    config, summary = fx_written
    return copy.deepcopy(config), {k: v.copy() for k, v in summary.items()}


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Report code finds workflow/schemas/ from the working directory."""
    monkeypatch.chdir(REPO)
