"""dvc.lock stays current: the md5 it records for every dependency of every stage in dvc.yaml
is the md5 of that file as committed (for a file, DVC records the plain md5 of its bytes).

When this fails, a stage's code changed without `dvc repro` (or, when the change leaves the
stage's outputs identical, `dvc commit`): run it and commit the new dvc.lock.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
LOCK = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_lock_records_the_current_md5_of_every_dependency(stage):
    assert stage in LOCK, f"dvc.lock has no stage {stage!r}: run `dvc repro {stage}`"
    recorded = {dep["path"]: dep for dep in LOCK[stage]["deps"]}
    deps = [d if isinstance(d, str) else next(iter(d)) for d in STAGES[stage].get("deps", [])]
    assert deps and sorted(deps) == sorted(recorded), (
        f"dvc.lock's deps of {stage!r} are not dvc.yaml's: run `dvc repro {stage}`")
    stale = []
    for dep in deps:
        path = REPO / dep
        assert path.is_file(), f"{dep}: a dependency of {stage!r} that is not a file"
        data = path.read_bytes()
        if (hashlib.md5(data).hexdigest(), len(data)) != (recorded[dep]["md5"],
                                                          recorded[dep]["size"]):
            stale.append(dep)
    assert not stale, (f"dvc.lock is stale for stage {stage!r}: {', '.join(stale)} changed "
                       f"since it was recorded. Run `dvc repro {stage}` and commit dvc.lock")
