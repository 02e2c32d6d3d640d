"""The HTML report's landing page: the pipeline's Markdown tables rendered as HTML."""

from __future__ import annotations

from ghuda.report.html import landing_html, markdown_html

TABLE = """**Toy: target accuracy (%), protocol `last`**

| Method | a→b | Δ [CI] |
|:---|---:|:---:|
| DANN | 60.0 ± 1.0 | — |
| +GH | 61.0 \\| x | +1.0 [−0.5, +2.5] |

Protocol last: final iterate; see [verify.md](verify.md).
"""


def test_markdown_table_becomes_an_html_table():
    out = markdown_html(TABLE)
    assert "<p><strong>Toy: target accuracy (%), protocol <code>last</code></strong></p>" in out
    assert '<th style="text-align:left">Method</th>' in out
    assert '<th style="text-align:right">a→b</th>' in out
    assert '<th style="text-align:center">Δ [CI]</th>' in out
    assert '<td style="text-align:right">61.0 | x</td>' in out  # escaped pipe kept in its cell
    assert out.count("<tr>") == 3
    assert "<p>Protocol last: final iterate; see verify.md.</p>" in out


def test_headings_lists_and_escaping():
    out = markdown_html("## Verdict <b>\n\n- one\n  continued\n- two & three\n")
    assert "<h2>Verdict &lt;b&gt;</h2>" in out
    assert "<ul><li>one continued</li><li>two &amp; three</li></ul>" in out


def test_landing_page_holds_every_main_table_and_the_verdict(fx_config, tmp_path):
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "toy.md").write_text(TABLE, encoding="utf-8")
    (tables / "protocols.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n", encoding="utf-8")
    (tables / "verify.md").write_text("# Verification\n\n**Verdict: nothing to compare.** x\n"
                                      "- toy: none\n\nDetails.\n", encoding="utf-8")
    out = landing_html(fx_config, tables)
    assert "<h2>Main table: Toy</h2>" in out
    assert "<strong>Verdict: nothing to compare.</strong> x" in out
    assert "<li>toy: none</li>" in out
    assert "Details." not in out
    assert "<h2>Model selection: last / source_val / oracle</h2>" in out
