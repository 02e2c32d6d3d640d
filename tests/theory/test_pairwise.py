"""Each pair-level property check passes on a correct harmonizer and flags a broken one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import exact_coef, gh_coef, harmonizer, released_coef, subjects_from

from ghuda.harmonize import Harmonized
from ghuda.theory.geometry import make_pairs, sample_pairs
from ghuda.theory.pairwise import (
    SearchBudget,
    adversarial_part,
    degenerate_part,
    evaluate_all,
    sampled_part,
)
from ghuda.theory.properties import properties
from ghuda.theory.subjects import shipped_subjects

PROPS = {(p.key, p.subjects): p for p in properties()}
BY_KEY = {p.key: p for p in properties()}
SMALL = SearchBudget(generations=3, popsize=4, polish_evals=10)


def run(key: str, subjects, n: int = 300, seed: int = 0, prop=None):
    p = prop or BY_KEY[key]
    pairs = sample_pairs(n, seed, conflicting=p.domain == "conflict")
    outs = evaluate_all(set(p.subjects), subjects, pairs)
    return sampled_part(p, outs, "random", subjects)


PAIR_KEYS = ["1a", "1b", "1c", "1d", "1e", "2a", "2a′", "4a", "4b", "4c", "4d", "4e", "5d"]


@pytest.mark.parametrize("key", PAIR_KEYS)
def test_holds_on_reference_harmonizers(key, correct):
    result = run(key, correct, n=200 if key == "4e" else 400)
    assert result.verdict == "holds", (result.max_violation, result.worst)
    assert result.cases == (200 if key == "4e" else 400)


def test_span_and_plain_sum_hold_on_reference(correct):
    for p in properties():
        if p.key in ("G1", "G2") and p.subjects == ("gh",):
            assert run(p.key, correct, prop=p).verdict == "holds"


@pytest.mark.parametrize(("key", "broken"), [
    ("1a", "gh"), ("1b", "gh"), ("1c", "gh"), ("1e", "gh"), ("2a", "gh"), ("2a′", "pcgrad")])
def test_gh_properties_flag_an_under_projecting_harmonizer(key, broken, correct):
    bad = harmonizer(lambda c, a, b, t: gh_coef(c, a, b, t, shrink=0.9))
    subjects = {**correct, broken: subjects_from(**{broken: bad})[broken]}
    result = run(key, subjects)
    assert result.verdict == "fails"
    assert result.violating_fraction > 0.9


def test_non_conflict_flags_the_plain_sum(correct):
    plain = harmonizer(lambda c, a, b, t: (1.0, 0.0, 0.0, 1.0))
    result = run("1d", {**correct, **subjects_from(gh=plain)})
    assert result.verdict == "fails"
    assert 0 < result.violating_fraction < 1  # the plain sum conflicts only at large ratios


def test_exact_ghpp_checks_flag_swapped_rotations(correct):
    swapped = harmonizer(lambda c, a, b, t: exact_coef(c, a, b, 1.0 - t))
    subjects = {**correct, **subjects_from(**{"ghpp_exact@t": swapped})}
    assert run("4a", subjects).verdict == "holds"  # still orthogonal, norms kept
    assert run("4c", subjects).verdict == "holds"
    assert run("4b", subjects).verdict == "fails"  # but the split of the rotation is wrong
    assert run("4d", subjects).verdict == "fails"


def test_exact_ghpp_checks_flag_lost_norms(correct):
    def shrunk(c, a, b, t):
        a11, a12, a21, a22 = exact_coef(c, a, b, t)
        return 0.99 * a11, 0.99 * a12, a21, a22

    subjects = {**correct, **subjects_from(**{"ghpp_exact@t": harmonizer(shrunk)})}
    assert run("4c", subjects).verdict == "fails"
    assert run("4b", subjects).verdict == "holds"  # a scaled vector keeps its direction


def test_optimality_flags_a_non_half_trade_off(correct):
    off = harmonizer(exact_coef, t_default=0.3)
    result = run("4e", {**correct, **subjects_from(ghpp_exact=off)}, n=100)
    assert result.verdict == "fails"


def test_released_ghpp_non_conflict_and_direction(correct):
    # 5a and 5b describe the released formula: they fail on it, and pass on stand-ins that
    # have the property (GH never conflicts; a harmonizer equals itself).
    assert run("5a", correct).verdict == "fails"
    assert run("5a", {**correct, "ghpp": correct["gh"]}).verdict == "holds"
    assert run("5b", correct).verdict == "fails"
    assert run("5b", {**correct, "ghpp": correct["ghpp_exact"]}).verdict == "holds"
    assert run("5c", correct).verdict == "fails"
    assert run("5c", {**correct, "ghpp_exact": correct["gh"]}).verdict == "holds"


def test_released_weights_flag_a_wrong_trade_off(correct):
    wrong = harmonizer(lambda c, a, b, t: released_coef(c, a, b, 0.4))
    assert run("5d", {**correct, **subjects_from(ghpp=wrong)}).verdict == "fails"


def test_span_flags_an_out_of_plane_component(correct):
    def fn(g1: torch.Tensor, g2: torch.Tensor) -> Harmonized:
        h = correct["gh"].fn(g1, g2)
        extra = torch.zeros_like(g1)
        extra[-1] = 1e-3 * float(g1.norm())  # generic direction: leaves span(g1, g2)
        return Harmonized(update=h.update + extra, h1=h.h1 + extra, h2=h.h2, w1=h.w1,
                          w2=h.w2, cos=h.cos, conflict=h.conflict)

    p = next(p for p in properties() if p.key == "G1" and p.subjects == ("gh",))
    assert run("G1", {**correct, **subjects_from(gh=fn)}, prop=p).verdict == "fails"


def test_plain_sum_without_conflict_flags_a_harmonizer_that_always_projects(correct):
    always = harmonizer(lambda c, a, b, t: (1.0, -c * a / b, -c * b / a, 1.0))
    p = next(p for p in properties() if p.key == "G2" and p.subjects == ("gh",))
    assert run("G2", {**correct, **subjects_from(gh=always)}, prop=p).verdict == "fails"


def test_degenerate_flags_nan_and_exceptions(correct):
    assert degenerate_part("gh", correct, 0).verdict == "holds"
    raw = harmonizer(lambda c, a, b, t: (1.0, -c * a / b, -c * b / a, 1.0))  # 0/0 at zero
    result = degenerate_part("gh", {**correct, **subjects_from(gh=raw)}, 0)
    assert result.verdict == "fails"

    def raises(g1, g2):
        raise RuntimeError("boom")

    result = degenerate_part("gh", {**correct, **subjects_from(gh=raises)}, 0)
    assert result.violating == result.cases
    assert "RuntimeError: boom" in result.note


def test_adversarial_search_finds_a_narrow_failure(correct):
    """Broken only for theta > 175 deg and |g2| > 10|g1|: 0.7% of the (theta, log ratio) box."""

    def narrow(c, a, b, t):
        coef = gh_coef(c, a, b, t)
        return (coef[0], 0.5 * coef[1], coef[2], coef[3]) if c < -0.9962 and b > 10 * a else coef

    subjects = {**correct, **subjects_from(gh=harmonizer(narrow))}
    result = adversarial_part(BY_KEY["1a"], subjects, 0, SearchBudget(8, 6, 20))
    assert result.verdict == "fails"
    assert adversarial_part(BY_KEY["1a"], correct, 0, SMALL).verdict == "holds"


def test_missing_harmonizer_is_reported_not_run(correct):
    subjects = {k: v for k, v in correct.items() if k != "pcgrad"}
    result = run("2a′", subjects)
    assert result.verdict == "not run"
    assert "pcgrad" in result.note


def test_shipped_gh_holds_and_released_ghpp_conflicts():
    """The checks on the code users run (small sample; the full run is `ghuda theory`)."""
    shipped = shipped_subjects()
    for key in ("1a", "1b", "1c", "1d", "2a"):
        assert run(key, shipped, n=200).verdict == "holds"
    if "ghpp" in shipped:
        assert run("5a", shipped, n=200).verdict == "fails"


def test_pairs_embed_the_requested_geometry():
    pairs = make_pairs([100.0, 180.0, 90.0], [1.0, 2.0, 3.0], [1e-3, 1e3, 1.0], dim=[2, 50, 3])
    for i in range(3):
        g1, g2 = pairs.vectors(i)
        cos = float(g1 @ g2 / g1.norm() / g2.norm())
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))) == pytest.approx(
            [100.0, 180.0, 90.0][i], abs=1e-9)
        assert float(g2.norm() / g1.norm()) == pytest.approx([1e-3, 500.0, 1 / 3][i])
