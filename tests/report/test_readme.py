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
