"""`ghuda data ...`: build digits-mini, fetch / register / verify the paper datasets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ghuda.data.paths import data_root


def _cmd_build(args: argparse.Namespace) -> int:
    from ghuda.data import digits_mini
    from ghuda.data.contact_sheet import write_contact_sheets

    if args.dataset.replace("-", "_") != digits_mini.NAME:
        print(f"ghuda data build: only digits-mini is built locally, not {args.dataset!r}; "
              f"the paper datasets are fetched: ghuda data fetch <dataset>", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else data_root() / digits_mini.NAME
    manifest = digits_mini.build(out, seed=args.seed)
    digest = digits_mini.manifest_sha256(out)
    for domain, entry in manifest["domains"].items():
        print(f"{domain:<12} {entry['count']:>5} images  (train {entry['split']['train_count']},"
              f" val {entry['split']['val_count']})")
    print(f"manifest sha256 {digest}  ({out / digits_mini.MANIFEST})")
    if args.figures:
        for path in write_contact_sheets(out, args.figures):
            print(f"wrote {path}")
    recorded = digits_mini.expected()
    if args.seed == recorded["seed"] and digest != recorded["manifest_sha256"]:
        print(f"ghuda data build: manifest sha256 {digest} differs from the recorded "
              f"{recorded['manifest_sha256']} ({digits_mini.EXPECTED_FILE}); the installed "
              "numpy / Pillow / matplotlib / scikit-learn differ from the pinned ones?",
              file=sys.stderr)
        return 1 if args.check else 0
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from ghuda.data import digits_mini
    from ghuda.data.api import require

    if args.dataset.replace("-", "_") == digits_mini.NAME:
        path = require(digits_mini.NAME, args.root)
        digits_mini.verify(path)
        print(f"digits-mini at {path}: every file matches its manifest")
        return 0
    from ghuda.data.recipes import verify_registered

    print(verify_registered(args.dataset, args.root))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ghuda data", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="generate digits-mini (deterministic for a seed)")
    b.add_argument("dataset", help="digits-mini")
    b.add_argument("--out", help="output directory (default: <data root>/digits_mini)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--figures", help="also write contact sheets into this directory")
    b.add_argument("--check", action="store_true",
                   help="exit 1 if the checksum differs from the recorded one (seed 0)")
    b.set_defaults(func=_cmd_build)
    v = sub.add_parser("verify", help="check a dataset on disk against its manifest")
    v.add_argument("dataset")
    v.add_argument("--root", help="data root (default: $GHUDA_DATA or <repo>/data)")
    v.set_defaults(func=_cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ghuda data`; returns the exit status (errors: message, status 1)."""
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"ghuda data {args.command}: error: {e}", file=sys.stderr)
        return 1
