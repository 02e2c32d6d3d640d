"""The harmonizers under test: the shipped `ghuda.harmonize` implementations, by key.

A key is a registered harmonizer's name, with the suffix ``@t`` when each case passes its own
t: ``ghpp_exact@t`` is exact GH++ called with each case's t, ``ghpp`` and ``ghpp_exact`` use
their default t. The keys under test are those the properties name
(`ghuda.theory.properties.properties`), so a property of a new harmonizer needs no list here.
Checks take a ``dict[str, Subject]`` so that tests can inject deliberately broken harmonizers.
"""

from __future__ import annotations

from functools import partial

from ghuda.theory.geometry import Subject
from ghuda.theory.properties import properties

PER_CASE_T = "@t"


def harmonizer_of(key: str) -> tuple[str, bool]:
    """(registered harmonizer name, whether each case passes its own t) of a subject key."""
    name, suffix, _ = key.partition(PER_CASE_T)
    return name, bool(suffix)


def shipped_subjects() -> dict[str, Subject]:
    """Subjects for every key a property names whose harmonizer is registered now."""
    from ghuda import harmonize

    available = set(harmonize.names())
    out: dict[str, Subject] = {}
    for key in dict.fromkeys(k for p in properties() for k in p.subjects):
        name, takes_t = harmonizer_of(key)
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
    missing = sorted({harmonizer_of(k)[0] for k in keys if k not in subjects})
    if not missing:
        return None
    return f"harmonizer(s) {', '.join(missing)} not registered in ghuda.harmonize"


def label(keys: tuple[str, ...], subjects: dict[str, Subject]) -> str:
    """Human label of the harmonizers a check runs on."""
    return " vs ".join(subjects[k].label if k in subjects else harmonizer_of(k)[0]
                       for k in keys)
