"""HTML rendering of the pipeline's Markdown tables, for the landing page of the Snakemake
report (`snakemake --report`, workflow/report/workflow.rst).

`markdown_html` covers the Markdown that `ghuda.report.tables` and `ghuda.report.verify` write:
headings, paragraphs, bullet lists, pipe tables with alignment, **bold**, `code` and links.
`landing_html` puts the per-dataset main tables, the verification verdict and the protocol
comparison on one page.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ghuda.report.claims import verdict_summary
from ghuda.report.lookup import dataset_table_stems
from ghuda.report.outputs import table_stems

STYLE = """<style>
.ghuda-tables table { border-collapse: collapse; margin: 0.5em 0 1em 0; font-size: 0.85em; }
.ghuda-tables th, .ghuda-tables td { border-bottom: 1px solid #ccc; padding: 2px 8px; }
.ghuda-tables th { border-bottom: 2px solid #666; }
.ghuda-tables p, .ghuda-tables li { font-size: 0.9em; max-width: 60em; }
.ghuda-tables h2 { margin-top: 1.2em; }
.ghuda-tables code::before, .ghuda-tables code::after { content: none; }
</style>"""
_ALIGN = {"l": "left", "r": "right", "c": "center"}


def _inline(text: str) -> str:
    """Escape, then **bold**, `code` and [text](target) (shown as text: the report has no
    files at those relative paths)."""
    out = html.escape(text.replace("\\|", "|"), quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _alignment(cell: str) -> str:
    cell = cell.strip()
    if cell.startswith(":") and cell.endswith(":"):
        return _ALIGN["c"]
    return _ALIGN["r"] if cell.endswith(":") else _ALIGN["l"]


def _table(lines: list[str]) -> str:
    header, aligns = _cells(lines[0]), [_alignment(c) for c in _cells(lines[1])]
    head = "".join(f'<th style="text-align:{a}">{_inline(c)}</th>'
                   for c, a in zip(header, aligns, strict=False))
    rows = ["<tr>" + "".join(f'<td style="text-align:{a}">{_inline(c)}</td>'
                             for c, a in zip(_cells(ln), aligns, strict=False)) + "</tr>"
            for ln in lines[2:]]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def markdown_html(text: str) -> str:
    """HTML of the Markdown subset the pipeline writes (see the module docstring)."""
    blocks: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 6)
            blocks.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|"):
            start = i
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                i += 1
            blocks.append(_table(lines[start:i]))
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith(("- ", "  ")):
                if lines[i].startswith("- "):
                    items.append(lines[i][2:].strip())
                else:
                    items[-1] += " " + lines[i].strip()
                i += 1
            blocks.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in items) + "</ul>")
        else:
            start = i
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(
                    ("#", "|", "- ")):
                i += 1
            blocks.append(f"<p>{_inline(' '.join(ln.strip() for ln in lines[start:i]))}</p>")
    return "\n".join(blocks)


def landing_html(config: Mapping[str, Any], tables_dir: str | os.PathLike[str]) -> str:
    """The main tables of a run, rendered: the claims' verdicts first, each dataset's table,
    the verification verdict and the model-selection protocols (read from the Markdown files
    under `tables_dir`)."""
    tables = Path(tables_dir)
    parts = [STYLE, '<div class="ghuda-tables">']
    claims = tables / "claims.md"
    if claims.exists():
        parts += ["<h2>Claims of the paper: verdicts</h2>",
                  markdown_html(verdict_summary(claims.read_text(encoding="utf-8")))]
    for stem in dataset_table_stems(config):
        label = config["datasets"][stem].get("label", stem)
        parts += [f"<h2>Main table: {html.escape(label)}</h2>",
                  markdown_html((tables / f"{stem}.md").read_text(encoding="utf-8"))]
    verify = tables / "verify.md"
    if verify.exists():
        verdict = [ln for ln in verify.read_text(encoding="utf-8").splitlines()
                   if ln.startswith(("**Verdict", "- "))]
        parts += ["<h2>Reproduced vs published numbers</h2>", markdown_html("\n".join(verdict))]
    if "protocols" in table_stems(config):
        parts += ["<h2>Model selection: last / source_val / oracle</h2>",
                  markdown_html((tables / "protocols.md").read_text(encoding="utf-8"))]
    parts.append("</div>")
    return "\n".join(parts) + "\n"
