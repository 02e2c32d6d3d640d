"""The harmonizers under test: the shipped `ghuda.harmonize` implementations, by key.

Checks take a ``dict[str, Subject]`` so that tests can inject deliberately broken harmonizers.
Keys: ``gh``, ``pcgrad``, ``ghpp`` (released GH++, default t), ``ghpp_exact`` (default t) and
``ghpp_exact@t`` (exact GH++ called with each case's own t).
"""

from __future__ import annotations

from functools import partial

from ghuda.theory.geometry import Subject

# key -> (registered harmonizer name, whether each case passes its own t)
SUBJECT_KEYS: dict[str, tuple[str, bool]] = {
    "gh": ("gh", False),
    "pcgrad": ("pcgrad", False),
    "ghpp": ("ghpp", False),
    "ghpp_exact": ("ghpp_exact", False),
    "ghpp_exact@t": ("ghpp_exact", True),
}


def shipped_subjects() -> dict[str, Subject]:
    """Subjects for every key whose harmonizer is registered in `ghuda.harmonize` now."""
    from ghuda import harmonize

    available = set(harmonize.names())
    out: dict[str, Subject] = {}
    for key, (name, takes_t) in SUBJECT_KEYS.items():
        if name not in available:
            continue
        if takes_t:
            out[key] = Subject(f"{name} (shipped, t per case)",
                               partial(harmonize.harmonize, name), takes_t=True)
        else:
            out[key] = Subject(f"{name} (shipped)", harmonize.make(name).harmonize)
    return out


def missing_note(keys: tuple[str, ...], subjects: dict[str, Subject]) -> str | None:
    """Why a check cannot run (a harmonizer not registered), or None when it can."""
    missing = sorted({SUBJECT_KEYS.get(k, (k, False))[0] for k in keys if k not in subjects})
    if not missing:
        return None
    return f"harmonizer(s) {', '.join(missing)} not registered in ghuda.harmonize"


def label(keys: tuple[str, ...], subjects: dict[str, Subject]) -> str:
    """Human label of the harmonizers a check runs on."""
    return " vs ".join(subjects[k].label if k in subjects else SUBJECT_KEYS.get(k, (k,))[0]
                       for k in keys)
