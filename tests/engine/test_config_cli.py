"""Config errors name the key and the allowed values and exit non-zero before any work;
`--set` parsing; NaN stops a run with the iteration number and no metrics.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ghuda import config, methods
from ghuda.config import ConfigError
from ghuda.engine.cli import EXIT_CONFIG, EXIT_NONFINITE, main
from ghuda.engine.evaluate import protocol_names


@pytest.mark.parametrize(("override", "expected"), [
    ("method.name=nope", ["method.name", "'nope'", "source_only", "dann"]),
    ("harmonizer.name=nope", ["harmonizer.name", "sum", "gh", "ghpp"]),
    ("dataset.name=nope", ["dataset.name", "digits_mini"]),
    ("dataset.target=mnist_x", ["dataset.target", "optdigits", "synth"]),
    ("dataset.target=synth", ["dataset.target", "equals dataset.source"]),
    ("train.stepz=3", ["train.stepz", "allowed keys", "steps"]),
    ("bogus.key=1", ["bogus", "allowed top-level keys"]),
    ("train.steps=many", ["train.steps", "expected int", "'many'"]),
    ("train.steps=2.5", ["train.steps", "expected int"]),
    ("train.nesterov=3", ["train.nesterov", "expected bool"]),
    ("train.steps=0", ["train.steps", "must be > 0"]),
    ("train.lr_schedule=cosine", ["train.lr_schedule", "inv", "constant"]),
    ("train.device=tpu", ["train.device", "auto", "cpu", "cuda"]),
    ("harmonizer.order=backwards", ["harmonizer.order", "released", "swapped"]),
    ("harmonizer.measure=all", ["harmonizer.measure", "released", "stepped"]),
    ("harmonizer.options={bogus: 1}", ["harmonizer.options", "bogus"]),
    ("method.params={bogus: 1}", ["method.params.bogus", "allowed", "trade_off"]),
    ("method.params={trade_off: high}", ["method.params.trade_off", "expected float"]),
    ("model.backbone=vgg", ["model.backbone", "digit_cnn", "resnet50"]),
    ("model.options={depth: 3}", ["model.options.depth", "widths"]),
    ("model.pretrained=true", ["model.pretrained", "no ImageNet weights"]),
    ("train.lr_multipliers={backbone: fast}", ["train.lr_multipliers.backbone", "number"]),
])
def test_config_errors_name_key_and_allowed_values(override, expected):
    with pytest.raises(ConfigError) as info:
        config.load(None, ["method.name=dann", override])
    for text in expected:
        assert text in str(info.value), (text, str(info.value))


def test_method_needing_a_vit_rejects_a_cnn_backbone():
    vit_methods = [m for m in methods.names() if methods.get(m).requires_backbone == "vit"]
    if not vit_methods:
        pytest.skip("no registered method requires a particular backbone")
    with pytest.raises(ConfigError, match=r"model\.backbone.*tiny_vit"):
        config.load(None, [f"method.name={vit_methods[0]}", "model.backbone=digit_cnn"])


@pytest.mark.parametrize("bad", ["train.steps", "=3", "train.steps=[1"])
def test_bad_set_syntax(bad):
    with pytest.raises(ConfigError, match="--set"):
        config.apply_overrides({}, [bad])


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        config.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("train: 3\n")
    with pytest.raises(ConfigError, match="train: expected a mapping"):
        config.load(wrong)


def test_overrides_and_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("method: {name: dann, params: {trade_off: 0.5}}\ntrain: {lr: 1e-3}\n")
    cfg = config.load(path, ["method.params.disc_hidden=64", "train.steps=7",
                             "harmonizer.options={t: 0.25}", "harmonizer.name=ghpp",
                             "variant=ghpp_t0.25"])
    assert cfg["train"]["lr"] == 1e-3
    assert isinstance(cfg["train"]["lr"], float)
    assert cfg["method"]["params"] == {"trade_off": 0.5, "disc_hidden": 64}
    assert cfg["train"]["steps"] == 7
    assert cfg["train"]["batch_size"] == 32
    assert config.variant(cfg) == "ghpp_t0.25"
    assert config.variant(config.load(None)) == "sum"
    assert config.sha256(cfg) == config.sha256(dict(reversed(list(cfg.items()))))
    assert config.sha256(cfg) != config.sha256(config.load(path))


def test_cli_config_error_exits_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--set", "method.name=nope", "--out", str(out)]) == EXIT_CONFIG
    assert "config error" in capsys.readouterr().err
    assert not out.exists()


def test_cli_group_error_found_at_setup_writes_nothing(cli_args, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(cli_args(out, "method.name=dann", "train.lr_multipliers={generator: 2}"))
    assert rc == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "train.lr_multipliers" in err
    assert "'generator'" in err
    assert "discriminator" in err
    assert not out.exists() or not any(out.iterdir())


def test_print_config(capsys):
    assert main(["--set", "train.steps=5", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "steps: 5" in out
    assert "# sha256: " in out


def test_nonfinite_loss_stops_with_step_and_no_metrics(cli_args, tmp_path, capsys):
    rc = main(cli_args(tmp_path, "method.name=dann", "train.lr=1e30"))
    assert rc == EXIT_NONFINITE
    err = capsys.readouterr().err
    assert "non-finite loss" in err
    assert "at iteration 2" in err
    assert "'dann'" in err
    assert not (tmp_path / "metrics.json").exists()
    failure = json.loads((tmp_path / "failure.json").read_text())
    assert failure["kind"] == "non_finite"
    assert failure["iteration"] == 2
    assert failure["what"].startswith("loss 'transfer'")
    # a later successful run of the folder removes the stale failure record
    assert main([*cli_args(tmp_path, "method.name=dann"), "--fresh"]) == 0
    assert not (tmp_path / "failure.json").exists()


def test_record_divergence_writes_a_diverged_metrics_and_exits_zero(cli_args, tmp_path,
                                                                     capsys):
    rc = main([*cli_args(tmp_path, "method.name=dann", "train.lr=1e30"), "--record-divergence"])
    assert rc == 0
    assert "recorded as diverged" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "diverged"
    assert metrics["failure"]["iteration"] == 2
    assert set(metrics["protocols"]) == set(protocol_names())
    assert all(p["acc"] is None for p in metrics["protocols"].values())
    assert "diverged at iteration 2" in metrics["protocols"]["last"]["selection"]
    assert metrics["run"]["method"] == "dann"
    assert metrics["cost"]["steps_done"] == 1  # iteration 2 diverged: one step was made
    assert metrics["cost"]["step_ms_median"] > 0
    # the folder now holds a finished (diverged) run: running again does not retrain
    assert main([*cli_args(tmp_path, "method.name=dann", "train.lr=1e30"),
                 "--record-divergence"]) == 0


def test_completed_run_has_status_completed(cli_args, tmp_path, capsys):
    assert main([*cli_args(tmp_path, "method.name=source_only"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    # log keys: source_val_acc only on eval lines (source validation); the done line names
    # the target accuracy of each protocol
    lines = capsys.readouterr().err.splitlines()
    evals = [ln for ln in lines if " eval " in ln]
    done = next(ln for ln in lines if " done " in ln)
    assert all("source_val_acc=" in ln for ln in evals)
    assert "source_val_acc=" not in done
    acc = metrics["protocols"]["source_val"]["acc"]
    assert f"target_acc.source_val={acc:.4g}" in done


def test_python_dash_m_train_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ghuda", "train", "--set", "method.name=x",
                           "--out", str(tmp_path)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == EXIT_CONFIG
    assert "method.name" in proc.stderr


def test_shipped_digits_mini_config_is_valid():
    path = Path(__file__).resolve().parents[2] / "configs" / "digits_mini.yaml"
    cfg = config.load(path)
    assert cfg["dataset"]["name"] == "digits_mini"
    assert cfg["model"]["options"] == {"input_norm": "gray"}


# ---------------------------------------------------------------- issue 23: validation gaps


def _one_line_config_error(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ghuda train: config error: "), err
    return lines[0]


@pytest.mark.parametrize("text", ["", "# only a comment\n\n"], ids=["empty", "comment-only"])
def test_empty_config_file_is_an_error(text, tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["--config", str(path), "--out", str(out)]) == EXIT_CONFIG
    line = _one_line_config_error(capsys.readouterr().err)
    assert f"config file {path} is empty (no keys)" in line
    assert "omit --config" in line
    assert not out.exists()


@pytest.mark.parametrize(("override", "key", "shown"), [
    ("train.lr=inf", "train.lr", "inf"),
    ("train.lr=.nan", "train.lr", "nan"),
    ("method.params.trade_off=.nan", "method.params.trade_off", "nan"),
    ("harmonizer.options={t: .inf}", "harmonizer.options.t", "inf"),
])
def test_non_finite_numbers_are_rejected(override, key, shown, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--set", "method.name=dann", "--set", "harmonizer.name=ghpp", "--set", override,
            "--out", str(out)]
    assert main(argv) == EXIT_CONFIG
    line = _one_line_config_error(capsys.readouterr().err)
    assert f"{key}: {shown} is not allowed; expected a finite number" in line
    assert not out.exists()


def test_digits_option_on_a_torchvision_backbone_names_who_takes_it(tmp_path, monkeypatch,
                                                                      capsys):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("config validation must not open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no cached weights
    digits = Path(__file__).resolve().parents[2] / "configs" / "digits_mini.yaml"
    out = tmp_path / "out"
    argv = ["--config", str(digits), "--set", "model.backbone=resnet50", "--out", str(out)]
    assert main(argv) == EXIT_CONFIG
    line = _one_line_config_error(capsys.readouterr().err)
    assert "model.options.input_norm: unknown option for 'resnet50'" in line
    assert "('input_norm' is an option of digit_cnn, tiny_vit)" in line
    assert not out.exists()
    assert not (tmp_path / "torch_home").exists()


def test_malformed_yaml_names_the_file(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("train: [1, 2\n")
    out = tmp_path / "out"
    assert main(["--config", str(path), "--out", str(out)]) == EXIT_CONFIG
    line = _one_line_config_error(capsys.readouterr().err)
    assert f"config file {path} is not valid YAML" in line
    assert f'in "{path}", line 1' in line
    assert "<unicode string>" not in line
    assert not out.exists()


# ---------------------------------------------------------------- issue 23: help texts


def _help(command: list[str], capsys) -> str:
    from ghuda.cli import main as ghuda

    with pytest.raises(SystemExit) as info:
        ghuda([*command, "--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines: one line


def test_train_help_shows_out_as_required(capsys):
    text = _help(["train"], capsys)
    usage = text.split("Train one UDA run")[0]
    assert " --out DIR " in usage
    assert "[--out DIR]" not in usage
    assert "--out DIR run folder (metrics.json, history.jsonl, config.yaml, ...); required, " \
           "except with --print-config" in text


def test_report_help_lists_fidelity(capsys):
    text = _help(["report"], capsys)
    assert "ghuda report fidelity --config C --paper configs/paper.yaml" in text
    assert "{aggregate,tables,figure,verify,budget,index,fidelity,landing,claims}" in text
    assert "fidelity write the fidelity table" in text


def test_data_build_help_documents_seed(capsys):
    text = _help(["data", "build"], capsys)
    assert "--seed SEED generator seed (default 0: the bytes recorded in " \
           "digits_mini_expected.json, which --check compares)" in text


def test_extension_fetch_root_defaults_like_every_root(tmp_path, monkeypatch, capsys):
    import re

    data_help = re.search(r"--root ROOT (data root \(default: [^)]*\))",
                          _help(["data", "info"], capsys)).group(1)
    fetch_help = re.search(r"--root ROOT (data root \(default: [^)]*\))",
                           _help(["extension", "fetch"], capsys)).group(1)
    assert fetch_help == data_help == "data root (default: $GHUDA_DATA or <repo>/data)"

    # and the default is that root: $GHUDA_DATA is where the dataset goes
    from ghuda.extensions.cli import main as extension
    from ghuda.extensions.retrieval import task as retrieval

    seen = []
    monkeypatch.setattr(retrieval, "fetch", lambda name, root, url=None: seen.append(root)
                        or root / name)
    monkeypatch.setenv("GHUDA_DATA", str(tmp_path / "elsewhere"))
    assert extension(["fetch", "css3d"]) == 0
    assert seen == [tmp_path / "elsewhere"]
