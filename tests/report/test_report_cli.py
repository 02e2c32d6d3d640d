"""`ghuda report ...`: errors name the problem, exit 1 and leave nothing half-written."""

from __future__ import annotations

from pathlib import Path

import yaml
from fakeruns import REPO

from ghuda.cli import main as ghuda
from ghuda.report.cli import main
from ghuda.report.outputs import table_names


def _config_file(config, tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_dispatch_through_top_level_cli(capsys):
    assert ghuda(["report", "aggregate", "--config", "nope.yaml", "--out", "x"]) == 1
    assert "nope.yaml: file not found" in capsys.readouterr().err


def test_bad_key_is_named(fx_config, tmp_path, capsys):
    fx_config["verify"] = {"tolerance_pp": -1}
    code = main(["aggregate", "--config", str(_config_file(fx_config, tmp_path)),
                 "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 1
    assert "invalid value at 'verify/tolerance_pp'" in err
    assert not (tmp_path / "s").exists()


def test_aggregate_without_runs_fails_cleanly(fx_config, tmp_path, capsys):
    code = main(["aggregate", "--config", str(_config_file(fx_config, tmp_path)),
                 "--out", str(tmp_path / "s")])
    assert code == 1
    assert "39 run(s) of config 'fx' have no metrics.json" in capsys.readouterr().err
    assert not (tmp_path / "s" / "runs.csv").exists()


def test_tables_verify_index_chain(fx_written, tmp_path, capsys):
    config, _ = fx_written
    cfg = _config_file(config, tmp_path)
    summary = str(Path(config["results_dir"]).parent / "summary")
    reported = str(REPO / "configs" / "reported.yaml")
    out = tmp_path / "tables"
    assert main(["tables", "--config", str(cfg), "--summary", summary, "--reported", reported,
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(table_names(config))
    assert main(["verify", "--config", str(cfg), "--summary", summary, "--reported", reported,
                 "--out", str(out / "verify.md")]) == 0
    printed = capsys.readouterr().out
    assert "**Verdict: nothing could be compared.**" in printed
    assert (out / "verify.md").read_text() in printed
    figs = tmp_path / "figures"
    assert main(["index", "--config", str(cfg), "--tables", str(out), "--figures",
                 str(figs), "--out", str(out / "README.md")]) == 0
    index = (out / "README.md").read_text()
    assert (out / "toy.md").read_text() in index
    assert "[Verification](verify.md)" in index
    assert "![ghpp_t_sensitivity](../figures/ghpp_t_sensitivity.png)" in index


def test_verify_can_fail_on_mismatch(fx_written, tmp_path, capsys):
    config, _ = fx_written
    config = dict(config, verify={"protocol": "oracle", "tolerance_pp": 0.1,
                                  "fail_on_mismatch": True})
    rep = tmp_path / "rep.yaml"
    rep.write_text(yaml.safe_dump({
        "sources": {"s": {"citation": "S"}},
        "entries": [{"dataset": "toy", "method": "dann", "variant": "sum", "task": "avg",
                     "value": 50.0, "source": "s"}]}))
    summary = str(Path(config["results_dir"]).parent / "summary")
    code = main(["verify", "--config", str(_config_file(config, tmp_path)), "--summary",
                 summary, "--reported", str(rep), "--out", str(tmp_path / "v.md")])
    assert code == 1
    assert "1 number(s) differ beyond the tolerance" in capsys.readouterr().err
    assert "DIFFERS" in (tmp_path / "v.md").read_text()


def test_reported_file_errors_are_named(fx_written, tmp_path, capsys):
    config, _ = fx_written
    rep = tmp_path / "rep.yaml"
    rep.write_text(yaml.safe_dump({"sources": {}, "entries": [
        {"dataset": "toy", "method": "dann", "variant": "sum", "task": "avg", "value": 150,
         "source": "s"}]}))
    summary = str(Path(config["results_dir"]).parent / "summary")
    code = main(["tables", "--config", str(_config_file(config, tmp_path)), "--summary",
                 summary, "--reported", str(rep), "--out", str(tmp_path / "t")])
    assert code == 1
    assert "invalid value at 'entries/0/value'" in capsys.readouterr().err
    rep.write_text(yaml.safe_dump({"sources": {}, "entries": [
        {"dataset": "toy", "method": "dann", "variant": "sum", "task": "avg", "value": 50,
         "source": "nobody"}]}))
    code = main(["tables", "--config", str(_config_file(config, tmp_path)), "--summary",
                 summary, "--reported", str(rep), "--out", str(tmp_path / "t")])
    assert code == 1
    assert "names source 'nobody'" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_shipped_reported_numbers_are_valid_and_cite_sources():
    from ghuda.report.reported import load_reported

    rep = load_reported(REPO / "configs" / "reported.yaml")
    assert rep.value("office31", "cdan", "sum", "avg") == 87.7
    assert rep.value("visda2017", "ssrt", "sum", "avg") == 88.76
    assert rep.get("office31", "cdan", "gh", "avg").value is None  # GH paper: not recorded
    assert not rep.published("digits_mini")
    assert all(entry.citation for _, entry in rep.entries())
