"""The claims table (ghuda.report.claims): every verdict of every rule is reachable, a changed
cell of an input table changes its verdict, the release findings come from the records, and
the landing page and index show the verdicts first."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from fakeruns import REPO

from ghuda.pipeline.config import load_config
from ghuda.report.claims import Inputs, claims_table, release_table
from ghuda.report.html import landing_html
from ghuda.report.index import index_markdown
from ghuda.report.render import from_markdown, to_markdown
from ghuda.report.verdicts import (
    FAILS,
    HOLDS,
    NOT_RESOLVED,
    UNTESTABLE,
    conflict_verdict,
    cost_verdict,
    delta_verdict,
    theory_verdict,
)


@pytest.mark.parametrize(("delta", "div", "verdict"), [
    ("+1.5 [+0.9, +2.1]", "0/6", HOLDS),
    ("−1.4 [−2.4, −0.3]", "0/60", FAILS),
    ("— [—, —]", "6/6", FAILS),
    ("−0.5 [−1.4, +0.4]", "0/60", NOT_RESOLVED),
    ("+9.6 [−12.8, +32.1]", "0/6", NOT_RESOLVED),
    ("−51.1 [—, —]", "4/6", NOT_RESOLVED),
])
def test_delta_rule_reaches_every_verdict(delta, div, verdict):
    assert delta_verdict(delta, div)[0] == verdict


def test_delta_rule_words_no_effect_within_two_points():
    assert "no effect beyond ±2 points" in delta_verdict("−0.5 [−1.4, +0.4]")[1]
    assert "reaches beyond ±2" in delta_verdict("+9.6 [−12.8, +32.1]")[1]
    # narrow (half-width 1.75) but not inside ±2: not "no effect", though measured to ±2
    assert "reaches beyond ±2" in delta_verdict("−1.8 [−3.5, +0.0]")[1]


def test_theory_rule():
    row = ["1a", "p", "gh (shipped)", "10", "0", "0", "holds"]
    expected = ["4a", "p", "ghpp_exact", "10", "0.5 rel", "0.838%", "**fails** (expected)"]
    wide = ["5a", "p", "ghpp", "10", "1 rel", "51.1%", "**fails** (expected)"]
    broken = ["1b", "p", "gh", "10", "1 rel", "0.01%", "**fails**"]
    rows = {"1a": [row], "4a": [expected], "5a": [wide], "1b": [broken]}
    assert theory_verdict(rows, ["1a", "4a"])[0] == HOLDS
    assert theory_verdict(rows, ["1a", "5a"])[0] == FAILS
    assert theory_verdict(rows, ["1b"])[0] == FAILS
    assert theory_verdict(rows, ["1a", "9z"])[0] == UNTESTABLE


def test_conflict_and_cost_rules():
    assert conflict_verdict("41.0")[0] == HOLDS
    assert conflict_verdict("0.5")[0] == FAILS
    assert conflict_verdict("5.0")[0] == NOT_RESOLVED
    assert conflict_verdict("—")[0] == NOT_RESOLVED
    assert cost_verdict([{"× baseline": "1.29", "extra bwd": "1"}])[0] == HOLDS
    assert cost_verdict([{"× baseline": "2.40", "extra bwd": "1"}])[0] == FAILS
    assert cost_verdict([{"× baseline": "1.10", "extra bwd": "2"}])[0] == FAILS


def _inputs(texts):
    return Inputs(config=load_config(REPO / "configs" / "default.yaml"), texts=texts,
                  runs=pd.DataFrame())


def _verdict(table, claim):
    return next(r[1] for r in table.rows if r[0] == claim)


def test_a_changed_cell_changes_the_verdict():
    """The committed default table, then the same with DANN + GH's Δ cell replaced."""
    text = (REPO / "tables" / "digits_mini.md").read_text(encoding="utf-8")
    claim = "GH improves DANN (digits-mini)"
    table = from_markdown(text)[0]
    col = table.columns.index("Δ Avg [CI]")
    dann = next(i for i, r in enumerate(table.rows) if r[0] == "DANN")
    for cell, verdict in (("+3.0 [+1.0, +5.0]", HOLDS), ("−3.0 [−5.0, −1.0]", FAILS),
                          ("+0.1 [−0.5, +0.7]", NOT_RESOLVED)):
        table.rows[dann + 1][col] = cell
        assert _verdict(claims_table(_inputs({"digits_mini": to_markdown(table)})),
                        claim) == verdict


def test_claims_absent_from_the_config_are_untestable_and_every_row_is_complete():
    text = (REPO / "tables" / "digits_mini.md").read_text(encoding="utf-8")
    table = claims_table(_inputs({"digits_mini": text}))
    assert _verdict(table, "GH improves MCD") == UNTESTABLE
    assert _verdict(table, "GH++ improves a recent state-of-the-art model, SSRT") == UNTESTABLE
    assert all(len(r) == len(table.columns) and r[1] and r[3] for r in table.rows)


def test_release_findings_come_from_the_records_with_file_and_line():
    table = release_table()
    assert table.rows
    mcd = [r for r in table.rows if r[0].startswith("--GH flag")]
    assert mcd
    assert mcd[0][2].startswith("mcd/mcd.py:")
    assert mcd[0][3] == "MCD"
    assert all(":" in r[2] for r in table.rows)


def test_landing_page_and_index_show_the_verdicts_first(tmp_path):
    config = load_config(REPO / "configs" / "default.yaml")
    tables = tmp_path / "tables"
    shutil.copytree(REPO / "tables", tables, ignore=shutil.ignore_patterns("digits_full",
                                                                        "ladder"))
    claims = claims_table(_inputs({"digits_mini": (tables / "digits_mini.md").read_text(
        encoding="utf-8")}))
    (tables / "claims.md").write_text(to_markdown(claims), encoding="utf-8")
    page = landing_html(config, tables)
    assert page.index("Claims of the paper: verdicts") < page.index("Main table")
    index = index_markdown(config, tables, tmp_path / "figures")
    assert index.index("## Claims of the paper: verdicts") < index.index("**digits-mini")


def test_extension_cost_conflict_and_verify_claims_follow_their_tables():
    from ghuda.report.conflict import conflict_table

    full = load_config(REPO / "configs" / "digits_full.yaml")
    ext = (REPO / "tables" / "digits_full" / "extensions.md").read_text(encoding="utf-8")
    runs = pd.DataFrame({"dataset": "digits_mini", "task": "synth->optdigits",
                         "method": ["dann"] * 4, "variant": ["sum", "sum", "gh", "gh"],
                         "seed": [0, 1, 0, 1], "conflict_fraction": [0.4, 0.5, 0.3, 0.3],
                         "mean_cos": [-0.1, -0.2, 0.0, 0.1], "logged_steps": 60,
                         "device": "cpu", "threads": 1, "wall_s": 30.0})
    conflict = to_markdown(conflict_table(full, {"runs": runs}))
    texts = {"extensions": ext, "conflict": conflict,
             "cost": (REPO / "tables" / "cost.md").read_text(encoding="utf-8"),
             "verify": (REPO / "tables" / "verify.md").read_text(encoding="utf-8")}
    table = claims_table(Inputs(config=full, texts=texts, runs=runs))
    ext_rows = [r for r in table.rows if "carries over to" in r[0]]
    assert len(ext_rows) == 4  # retrieval and detection × GH, GH++
    assert {r[1] for r in ext_rows} == {NOT_RESOLVED}
    assert _verdict(table, "The source and transfer gradients conflict (obtuse angle) during "
                           "DANN training (digits-mini)") == HOLDS
    cost = [r for r in table.rows if r[0].startswith("GH costs")]
    assert cost[0][1] == HOLDS
    assert _verdict(table, "The published accuracies are reproduced") == UNTESTABLE
    lower = runs.assign(conflict_fraction=[0.001, 0.002, 0.3, 0.3])
    texts["conflict"] = to_markdown(conflict_table(full, {"runs": lower}))
    assert _verdict(claims_table(Inputs(config=full, texts=texts, runs=lower)),
                    "The source and transfer gradients conflict (obtuse angle) during DANN "
                    "training (digits-mini)") == FAILS
