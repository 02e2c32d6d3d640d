"""The top-level CLI dispatches and rejects unknown commands."""

import subprocess
import sys

from ghuda import cli


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command in out


def test_unknown_command_exits_nonzero(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "ghuda", "--help"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0
    assert "usage: ghuda" in proc.stdout
