"""Command-line entry point: `ghuda <command> ...` (also `python -m ghuda`).

Each command lives in its own subpackage and is imported only when used, so that
`ghuda theory` does not pay for torchvision and `ghuda data` does not pay for the engine.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module exposing `main(argv: list[str]) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("ghuda.engine.cli", "train one run from a config file"),
    "train-batch": ("ghuda.engine.batch", "train a list of runs in one process (pipeline "
                    "jobs)"),
    "data": ("ghuda.data.cli", "build, fetch, register and verify datasets"),
    "theory": ("ghuda.theory.cli", "run the numerical checks of GH / GH++ theory"),
    "report": ("ghuda.report.cli", "aggregate runs into tables, figures and verdicts"),
    "config": ("ghuda.pipeline.check", "check a pipeline or run config before anything runs"),
    "extension": ("ghuda.extensions.cli", "GH / GH++ for retrieval and detection (train, "
                  "fetch, report)"),
}


def _usage() -> str:
    lines = ["usage: ghuda <command> [options]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`ghuda <command> --help` describes a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a command's `main`; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"ghuda: unknown command {command!r}; choose from {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[command][0])
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:  # `ghuda train` says how to resume; the others have no state
        print(f"ghuda {command}: interrupted (Ctrl-C); run the same command again.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
