"""Validation of method hyper-parameters: each error names the method and the parameter."""

from __future__ import annotations

from ghuda.methods import release


def check_positive(method: str, **values: float) -> None:
    """Raise a ValueError naming the first hyper-parameter of `method` that is not > 0."""
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"method {method!r}: {key} must be > 0, got {value}")


def check_in_unit(method: str, **values: float) -> None:
    """Raise a ValueError naming the first hyper-parameter of `method` outside [0, 1]."""
    for key, value in values.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"method {method!r}: {key} must be in [0, 1], got {value}")


def check_switches(method: str, **values: str) -> None:
    """Validate switch values (``domain_loss``, ``init``, ...) against `release`'s choices."""
    allowed = {"domain_loss": release.DOMAIN_LOSSES, "optimizer": release.OPTIMIZERS,
               "init": release.INITS, "grl_counter": release.GRL_COUNTERS,
               "forward": release.FORWARDS, "augment": release.AUGMENTS}
    for key, value in values.items():
        release.check_choice(method, key, value, allowed[key])
