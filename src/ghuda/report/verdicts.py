"""The rules that turn table cells into verdicts (issue 28; `ghuda.report.claims` applies
them): each states its tolerance, and each verdict is one of `VERDICTS`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

HOLDS, FAILS, NOT_RESOLVED, UNTESTABLE = "holds", "fails", "not resolved", "untestable here"
VERDICTS = (HOLDS, FAILS, NOT_RESOLVED, UNTESTABLE)
NO_EFFECT_PP = 2.0  # an interval within ±this many points: "no effect beyond ±2 points"
CONFLICT_HOLDS_PCT = 10.0  # median share of conflicting logged steps for "they conflict"
CONFLICT_FAILS_PCT = 1.0
EXPECTED_MAX_PCT = 5.0  # documented degenerate failures tolerated, % of cases
COST_FLOOR = 2.0  # one extra backward: a step at most twice the plain step
DELTA_RULE = (f"Δ: holds: the 95 % interval of Δ (paired, to the baseline) lies above 0; fails: "
              f"it lies below 0, or every run diverged; not resolved: it contains 0 (\"no "
              f"effect beyond ±{NO_EFFECT_PP:g} points\" when it lies within "
              f"±{NO_EFFECT_PP:g}), or fewer than 3 pairs")
THEORY_RULE = (f"theory: holds: every listed property holds on all its cases within its tolerance, "
               f"or fails only where the theory checks mark it expected (documented degenerate "
               f"cases, docs/theory.md) on at most {EXPECTED_MAX_PCT:g} % of them; fails: "
               f"otherwise; untestable here: a property is missing")
CONFLICT_RULE = (f"conflict: holds: the baseline (plain-sum) runs' median share of logged "
                 f"steps with <g1, g2> < 0 is at least {CONFLICT_HOLDS_PCT:g} %; fails: below "
                 f"{CONFLICT_FAILS_PCT:g} %; not resolved: in between")
COST_RULE = (f"cost: holds: every row of the harmonizer makes at most 1 extra backward pass "
             f"and its step time is at most {COST_FLOOR:g}× the baseline's (the two-pass floor); "
             f"fails: otherwise")
VERIFY_RULE = ("published: holds: every compared number is within verify.tolerance_pp of "
               "the published one; fails: one differs; untestable here: no published number "
               "to compare")

RULES = (CONFLICT_RULE, THEORY_RULE, DELTA_RULE, COST_RULE, VERIFY_RULE)


def rule_name(rule: str) -> str:
    """A rule's name: its text up to the first colon ('Δ', 'theory', ...)."""
    return rule.split(":")[0]


def number(cell: str) -> float:
    """A table cell's leading number ('−1.4', '0.838%', '1.29'); NaN for a dash or text."""
    match = re.match(r"\s*([−+-]?\d+(?:\.\d+)?(?:e[−+-]?\d+)?)", cell.replace("−", "-"))
    return float(match.group(1)) if match else math.nan


def parse_delta(cell: str) -> tuple[float, float, float]:
    """(Δ, low, high) of a 'Δ [low, high]' cell; NaN where a dash stands."""
    match = re.fullmatch(r"\s*(\S+)\s*\[(\S+),\s*(\S+)\]\s*", cell)
    if not match:
        return math.nan, math.nan, math.nan
    mean, low, high = (number(match.group(i)) for i in (1, 2, 3))
    return mean, low, high


def all_diverged(count: str) -> bool:
    """Whether a 'k/n' cell says every one of n > 0 runs diverged."""
    match = re.fullmatch(r"\s*(\d+)/(\d+)\s*", count)
    return bool(match) and int(match.group(2)) > 0 and match.group(1) == match.group(2)


def delta_verdict(delta: str, diverged: str = "0/0") -> tuple[str, str]:
    """(verdict, measured) of a paired 'Δ [CI]' cell by `DELTA_RULE`."""
    mean, low, high = parse_delta(delta)
    if math.isnan(mean) and all_diverged(diverged):
        return FAILS, f"every run diverged ({diverged})"
    if math.isnan(low) or math.isnan(high):
        return NOT_RESOLVED, f"Δ {delta} (no interval: fewer than 3 pairs)"
    if low > 0:
        return HOLDS, f"Δ {delta}"
    if high < 0:
        return FAILS, f"Δ {delta}"
    within = low >= -NO_EFFECT_PP and high <= NO_EFFECT_PP
    return NOT_RESOLVED, (f"Δ {delta}: no effect beyond ±{NO_EFFECT_PP:g} points" if within
                          else f"Δ {delta}: interval reaches beyond ±{NO_EFFECT_PP:g} points")


def theory_verdict(rows: Mapping[str, list[list[str]]], ids: Sequence[str]) -> tuple[str, str]:
    """(verdict, measured) of theory properties `ids` by `THEORY_RULE`; `rows` maps a property
    id to its Summary rows [#, Property, Harmonizer, Cases, Max violation, fraction, Verdict]."""
    missing = [i for i in ids if i not in rows]
    if missing:
        return UNTESTABLE, f"no theory result for {', '.join(missing)}"
    verdict, parts = HOLDS, []
    for pid in ids:
        for row in rows[pid]:
            state, fraction = row[-1].replace("*", ""), row[-2]
            if state.startswith("holds"):
                parts.append(f"{pid} holds ({row[2]})")
                continue
            expected = "expected" in state and number(fraction) <= EXPECTED_MAX_PCT
            parts.append(f"{pid} fails on {fraction} of cases ({row[2]}"
                         f"{', expected' if 'expected' in state else ''})")
            if not expected:
                verdict = FAILS
    return verdict, "; ".join(parts)


def conflict_verdict(median_pct: str) -> tuple[str, str]:
    """(verdict, measured) of a conflict table's median share (%) by `CONFLICT_RULE`."""
    share = number(median_pct)
    if math.isnan(share):
        return NOT_RESOLVED, "no logged pair"
    verdict = (HOLDS if share >= CONFLICT_HOLDS_PCT else
               FAILS if share < CONFLICT_FAILS_PCT else NOT_RESOLVED)
    return verdict, f"median {median_pct} % of logged steps conflict"


def cost_verdict(rows: Sequence[Mapping[str, str]]) -> tuple[str, str]:
    """(verdict, measured) of the cost table's rows of one harmonizer by `COST_RULE`."""
    ratios = [number(r["× baseline"]) for r in rows]
    passes = [number(r["extra bwd"]) for r in rows]
    ok = all(p <= 1 for p in passes) and all(x <= COST_FLOOR for x in ratios)
    return (HOLDS if ok else FAILS,
            f"× baseline {min(ratios):.2f}–{max(ratios):.2f} over {len(rows)} row(s); "
            f"extra backward passes {int(max(passes))}")
