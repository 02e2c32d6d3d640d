"""Markdown / LaTeX rendering of the table model."""

from __future__ import annotations

import math

import pytest

from ghuda.report.render import Table, fmt, fmt_p, latex_escape, to_latex, to_markdown


def test_fmt_and_fmt_p():
    assert fmt(1.25) == "1.2"
    assert fmt(-0.5, signed=True) == "−0.5"
    assert fmt(0.5, signed=True) == "+0.5"
    assert fmt(None) == "—"
    assert fmt(math.nan) == "—"
    assert fmt_p(0.0004) == "<0.001"
    assert fmt_p(0.031) == "0.031"
    assert fmt_p(0.456) == "0.46"
    assert fmt_p(math.nan) == "—"


def test_latex_escape_specials():
    assert latex_escape("a_b 5% & ±→") == r"a\_b 5\% \& $\pm$$\to$"


def test_row_width_is_checked():
    table = Table(caption="c", columns=["a", "b"])
    with pytest.raises(ValueError, match="2 columns"):
        table.add(["only one"])


def test_markdown_and_latex_shapes():
    table = Table(caption="Cap", columns=["x", "y|z"], notes=["n1", "n2"], label="tab:x")
    table.add(["1", "2"])
    table.end_group()
    table.add(["3", "4"])
    md = to_markdown(table)
    assert md.splitlines()[:4] == ["**Cap**", "", "| x | y\\|z |", "|:---|---:|"]
    assert md.endswith("\n\nn1\n\nn2\n")
    tex = to_latex(table)
    assert tex.count(r"\midrule") == 2  # after the header and between the groups
    assert r"\label{tab:x}" in tex
    assert r"\begin{tabular}{lr}" in tex
