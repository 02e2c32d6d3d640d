"""The README's main-table excerpt is the committed generated table, byte for byte (so the
README cannot show numbers that the pipeline did not produce)."""

from __future__ import annotations

import re

from fakeruns import REPO


def test_readme_main_table_equals_the_generated_table():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- main-table: (\S+) .*?-->\n(.*?)\n<!-- /main-table -->", readme,
                      flags=re.DOTALL)
    assert match, "README.md lacks the main-table block"
    path, excerpt = REPO / match.group(1), match.group(2)
    assert path.is_file(), path
    assert excerpt.strip() == path.read_text(encoding="utf-8").strip()


def _block(readme: str, tag: str) -> tuple[str | None, str]:
    """(path named in the opening comment, body) of `<!-- tag: PATH ... -->...<!-- /tag -->`."""
    match = re.search(rf"<!-- {tag}:? ?(\S*) .*?-->\n(.*?)\n<!-- /{tag} -->", readme,
                      flags=re.DOTALL)
    assert match, f"README.md lacks the {tag} block"
    return match.group(1) or None, match.group(2)


def test_readme_ladder_table_equals_the_generated_table():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    path, excerpt = _block(readme, "ladder-table")
    assert path is not None
    assert excerpt.strip() == (REPO / path).read_text(encoding="utf-8").strip()


def test_readme_ladder_findings_quote_only_numbers_of_the_ladder_table():
    """Every decimal number in the regime-ladder findings appears in the generated table."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    _, findings = _block(readme, "ladder-findings")
    table = (REPO / "tables" / "ladder" / "ladder.md").read_text(encoding="utf-8")
    numbers = re.findall(r"[−+]?\d+\.\d+", findings)
    assert numbers, "the findings quote no number"
    missing = [n for n in numbers if n not in table]
    assert not missing, f"numbers not in tables/ladder/ladder.md: {missing}"


def test_readme_claims_block_is_the_verdict_summary_of_its_claims_table():
    from ghuda.report.claims import verdict_summary

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    path, excerpt = _block(readme, "claims")
    assert path is not None
    claims = (REPO / path).read_text(encoding="utf-8")
    assert excerpt.strip() == verdict_summary(claims).strip()
    assert readme.index("<!-- claims:") < readme.index("## First five minutes")


def test_readme_findings_quote_only_numbers_of_their_tables():
    """Every decimal number and every number with thousands separators of each findings block
    is in one of the files the block names (separators ignored)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- findings: (.*?) \(.*?-->\n(.*?)\n<!-- /findings -->", readme,
                        flags=re.DOTALL)
    assert len(blocks) >= 2, "README.md lacks its findings blocks"
    for paths, text in blocks:
        sources = "".join((REPO / p).read_text(encoding="utf-8")
                          for p in paths.split()).replace(",", "")
        numbers = re.findall(r"[−+]?\d+\.\d+|\d{1,3}(?:,\d{3})+", text)
        assert numbers, f"the findings from {paths} quote no number"
        missing = [n for n in numbers if n.replace(",", "") not in sources]
        assert not missing, f"numbers in none of {paths}: {missing}"


def test_readme_gpu_table_rounds_the_measured_csv():
    """The README's GPU step-time table: each ms cell is the CSV's ms_per_step rounded, each
    'x floor' its ratio to the two-pass floor."""
    import csv

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = list(csv.DictReader((REPO / "benchmarks" / "results" / "gpu_check_cuda.csv")
                               .open(encoding="utf-8")))
    ms = {(r["precision"], r["name"]): float(r["ms_per_step"]) for r in rows
          if r["section"] == "step"}
    header = re.search(r"^\s*\| \| (plain \|.*)$", readme, flags=re.MULTILINE)
    assert header, "README.md lacks the GPU table"
    names = [c.strip().replace("two-pass floor", "floor").replace("three-pass", "three_pass")
             for c in header.group(1).strip(" |").split("|")]
    for label, precision in (("fp32", "fp32"), ("bf16 + channels-last", "bf16+channels_last")):
        line = re.search(rf"^\s*\| {re.escape(label)} \|(.*)$", readme, flags=re.MULTILINE)
        assert line, label
        for name, cell in zip(names, line.group(1).strip(" |").split("|"), strict=True):
            value = ms[(precision, name)]
            assert cell.split()[0] == f"{value:.1f}", (label, name, cell)
            ratio = re.search(r"\(([\d.]+)x floor\)", cell)
            if ratio:
                assert ratio.group(1) == f"{value / ms[(precision, 'floor')]:.2f}", (label, name)
