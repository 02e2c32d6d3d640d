"""A new table is one function in one module: registered (here from a ``$GHUDA_PLUGINS``
module), it is among the outputs (hence the Snakefile's), the written tables and the index."""

from __future__ import annotations

from ghuda.report.index import index_markdown
from ghuda.report.outputs import table_names
from ghuda.report.tables import build_tables, write_tables

PLUGIN = '''
from ghuda.report.outputs import register_table
from ghuda.report.render import Table


@register_table("plugin_counts", "Runs per method (a plug-in table)",
                when=lambda config: config["name"] == "with_plugin")
def plugin_counts(config, summary):
    """Runs per method."""
    table = Table(caption="Runs per method", columns=["Method", "runs"])
    for method, n in summary["runs"].groupby("method").size().items():
        table.add([method, str(n)])
    return table
'''


def test_a_plugin_table_is_in_the_outputs_the_tables_and_the_index(fx_summary, tmp_path,
                                                                    monkeypatch):
    (tmp_path / "ghuda_plugin_table.py").write_text(PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GHUDA_PLUGINS", "ghuda_plugin_table")
    config, summary = fx_summary
    config["name"] = "with_plugin"
    assert table_names(config)[-2:] == ["plugin_counts.md", "plugin_counts.tex"]
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    written = write_tables(build_tables(config, summary, None), tables)
    assert sorted(p.name for p in written) == sorted(table_names(config))
    assert (tables / "plugin_counts.md").read_text(encoding="utf-8").startswith(
        "**Runs per method**")
    index = index_markdown(config, tables, figures)
    assert "- [Runs per method (a plug-in table)](plugin_counts.md)" in index
    assert "plugin_counts.md" not in table_names({**config, "name": "other"})
