"""One table model, two renderings: Markdown (GitHub) and LaTeX (booktabs)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

DASH = "—"


@dataclass
class Table:
    """A captioned table; `groups` are row indices after which a rule separates groups."""

    caption: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    align: str = ""  # one of l/r/c per column; default: first column l, others r
    groups: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.align:
            self.align = "l" + "r" * (len(self.columns) - 1)

    def add(self, cells: list[str]) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"row has {len(cells)} cells, table {self.caption!r} has "
                             f"{len(self.columns)} columns")
        self.rows.append(cells)

    def end_group(self) -> None:
        if self.rows and (not self.groups or self.groups[-1] != len(self.rows) - 1):
            self.groups.append(len(self.rows) - 1)


def fmt(x: float | None, digits: int = 1, signed: bool = False) -> str:
    """A number for a table cell; NaN/None -> an em dash; minus as U+2212."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    text = f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
    return text.replace("-", "−")


def fmt_p(p: float | None) -> str:
    """A p-value: two significant digits, '<0.001' below that."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return DASH
    if p < 0.001:
        return "<0.001"
    return f"{p:.2g}" if p < 0.1 else f"{p:.2f}"


def to_markdown(table: Table) -> str:
    """GitHub-flavoured Markdown: caption as a bold paragraph, notes below the table."""
    aligns = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [f"**{table.caption}**", ""]
    lines.append("| " + " | ".join(_md_cell(c) for c in table.columns) + " |")
    lines.append("|" + "|".join(aligns[a] for a in table.align) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    for note in table.notes:  # one paragraph per note
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


_LATEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "→": r"$\to$", "−": r"$-$", "Δ": r"$\Delta$", "×": r"$\times$",
    "≤": r"$\leq$", "≥": r"$\geq$", "—": "---", "θ": r"$\theta$", "·": r"$\cdot$",
    "`": "", "<": r"$<$", ">": r"$>$", "²": r"$^2$", "Σ": r"$\Sigma$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); notes go under the tabular."""
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(table.caption)}}}"]
    if table.label:
        lines.append(rf"\label{{{table.label}}}")
    lines += [rf"\begin{{tabular}}{{{table.align}}}", r"\toprule",
              " & ".join(latex_escape(c) for c in table.columns) + r" \\", r"\midrule"]
    for i, row in enumerate(table.rows):
        lines.append(" & ".join(latex_escape(c) for c in row) + r" \\")
        if i in table.groups and i != len(table.rows) - 1:
            lines.append(r"\midrule")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.notes:
        lines.append(r"\par\smallskip\footnotesize " +
                     r" \\ ".join(latex_escape(n) for n in table.notes))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().removeprefix("|").removesuffix("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def from_markdown(text: str) -> list[Table]:
    """The pipe tables of a Markdown text written by `to_markdown` (or any GitHub pipe table),
    in order; a table's caption is the bold line or heading just above it ('' if none).
    The inverse of `to_markdown` for captions, columns and cells (notes are not read)."""
    tables: list[Table] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not (lines[i].lstrip().startswith("|") and i + 1 < len(lines)
                and re.fullmatch(r"\s*\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*", lines[i + 1])):
            i += 1
            continue
        above = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
        caption = (above.strip("*") if above.startswith("**")
                   else above.lstrip("#").strip() if above.startswith("#") else "")
        columns = _split_row(lines[i])
        table = Table(caption=caption, columns=columns,
                      align="".join("r" if c.strip().endswith(":") and not c.strip()
                                    .startswith(":") else "l"
                                    for c in _split_row(lines[i + 1])))
        i += 2
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            table.add(_split_row(lines[i]))
            i += 1
        tables.append(table)
    return tables
