"""What every benchmark row records about where it ran: the commit (from the run provenance,
`ghuda.engine.metrics.provenance`), the machine, the load and the date."""

from __future__ import annotations

import os
import time

from ghuda.engine.metrics import machine_description, provenance

__all__ = ["date", "git_commit", "load_average", "machine_description"]


def git_commit() -> str:
    """Short commit of the source tree, '+dirty' when tracked files changed ('' unknown):
    the ``git_commit`` / ``git_dirty`` of the run provenance."""
    prov = provenance(config_sha256="", device="", seed=0, data={})
    if not prov["git_commit"]:
        return ""
    return prov["git_commit"][:7] + ("+dirty" if prov["git_dirty"] else "")


def load_average() -> str:
    """The 1-minute load average, two decimals."""
    return f"{os.getloadavg()[0]:.2f}"


def date() -> str:
    """Local time, ISO 8601 with the UTC offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
