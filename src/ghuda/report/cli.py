"""`ghuda report <step>`: the pipeline's steps after training (each a Snakemake rule).

    ghuda report aggregate --config C --out results/<name>/summary
    ghuda report tables    --config C --summary S --reported R --out tables
    ghuda report figure    NAME --config C --summary S --out figures
    ghuda report verify    --config C --summary S --reported R --out tables/verify.md
    ghuda report budget    --config C --target configs/paper.yaml --summary S --out F --jobs F
                           [--gpu-csv benchmarks/results/gpu_check_cuda.csv]
                           [--pass-csv benchmarks/results/backbone_pass_cpu.csv]
    ghuda report index     --config C --tables tables --figures figures --out tables/README.md
    ghuda report fidelity  --config C --paper configs/paper.yaml --out tables/fidelity.md
    ghuda report landing   --config C --tables tables --out results/<name>/report/tables.html
    ghuda report claims    --config C --tables tables --summary S --paper configs/paper.yaml
                           --out tables/claims.md [--figures F] [--configfile F]
                           [--theory-benchmark TSV] [--results results/<name>]

C is a pipeline config (configs/*.yaml, or the resolved results/<name>/pipeline_config.yaml).
Errors name the file and key and exit with status 1; nothing half-written is left behind.
"""

from __future__ import annotations

import argparse
import sys

from ghuda.config import ConfigError
from ghuda.pipeline.config import load_config, settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ghuda report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)

    def add(name: str, help_: str, *args: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", required=True, help="pipeline config (YAML)")
        for arg in args:
            p.add_argument(f"--{arg}", required=True)
        return p

    add("aggregate", "collect run folders into summary tables", "out")
    add("tables", "write the Markdown and LaTeX tables", "summary", "reported", "out")
    fig = add("figure", "write one figure as PNG and PDF", "summary", "out")
    fig.add_argument("name", help="figure name (ghuda.report.outputs.figure_names)")
    add("verify", "compare reproduced and published numbers", "summary", "reported", "out")
    budget = add("budget", "estimate the GPU time of another config's jobs", "target",
                 "summary", "out", "jobs")
    budget.add_argument("--gpu-csv", default=None,
                        help="measured step times (benchmarks/gpu_check.py CSV)")
    budget.add_argument("--pass-csv", default=None,
                        help="measured backbone pass times (benchmarks/backbone_pass.py CSV; "
                        "default: compute_budget.cpu_pass_csv of the config)")
    add("index", "write the index of tables and figures", "tables", "figures", "out")
    add("fidelity", "write the fidelity table (released behaviour vs this config and the "
        "paper config)", "paper", "out")
    add("landing", "render the main tables as HTML (the HTML report's landing page)",
        "tables", "out")
    claims = add("claims", "write the claims table (tables/claims.md and .tex)", "tables",
                 "summary", "paper", "out")
    claims.add_argument("--figures", default="figures", help="the config's figures folder")
    claims.add_argument("--configfile", default="configs/default.yaml",
                        help="the config file the regenerating commands name")
    claims.add_argument("--theory-benchmark", default=None,
                        help="Snakemake benchmark file of the theory step (its wall time)")
    claims.add_argument("--results", default=None,
                        help="results/<name> (the extension runs' devices)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ghuda report`; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ConfigError, FileNotFoundError, ValueError, KeyError) as err:
        print(f"ghuda report {args.step}: error: {err}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.step == "aggregate":
        from ghuda.report.aggregate import aggregate

        paths = aggregate(config, args.out)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
        return 0
    if args.step == "fidelity":
        from ghuda.report.fidelity import fidelity_markdown
        from ghuda.runs import write_text

        write_text(args.out, fidelity_markdown(load_config(args.paper), config))
        print(f"wrote {args.out}")
        return 0
    if args.step == "index":
        from ghuda.report.index import index_markdown
        from ghuda.runs import write_text

        write_text(args.out, index_markdown(config, args.tables, args.figures))
        print(f"wrote {args.out}")
        return 0
    if args.step == "landing":
        from ghuda.report.html import landing_html
        from ghuda.runs import write_text

        write_text(args.out, landing_html(config, args.tables))
        print(f"wrote {args.out}")
        return 0
    from ghuda.report.aggregate import load_summary

    summary = load_summary(args.summary)
    if args.step == "tables":
        from ghuda.report.reported import load_reported
        from ghuda.report.tables import build_tables, write_tables

        written = write_tables(build_tables(config, summary, load_reported(args.reported)),
                               args.out)
        print("wrote " + ", ".join(str(p) for p in written))
        return 0
    if args.step == "figure":
        from ghuda.report.figures import make_figure

        written = make_figure(args.name, config, summary, args.out)
        print("wrote " + ", ".join(str(p) for p in written))
        return 0
    if args.step == "verify":
        return _verify(config, summary, args)
    if args.step == "claims":
        return _claims(config, summary, args)
    if args.step == "budget":
        from ghuda.report.budget import write_budget

        hours = write_budget(config, summary["runs"], args.target, args.out, args.jobs,
                             args.gpu_csv, args.pass_csv)
        print(f"wrote {args.out} and {args.jobs}: {hours:,.0f} GPU hours estimated")
        return 0
    raise AssertionError(args.step)  # argparse restricts the choices


def _claims(config, summary, args: argparse.Namespace) -> int:
    from pathlib import Path

    from ghuda.report.claims import (
        benchmark_seconds,
        claims_latex,
        claims_markdown,
        extension_devices,
        read_inputs,
    )
    from ghuda.runs import write_text

    paper = load_config(args.paper)
    seconds = benchmark_seconds(args.theory_benchmark)
    inputs = read_inputs(
        config, args.tables, summary["runs"], figures_dir=Path(args.figures).as_posix(),
        configfile=args.configfile,
        paper_datasets=[d.get("label", n) for n, d in paper["datasets"].items()],
        seconds={} if seconds is None else {"theory": seconds},
        extension_devices=extension_devices(args.results) if args.results else [])
    out = Path(args.out)
    write_text(out, claims_markdown(inputs))
    write_text(out.with_suffix(".tex"), claims_latex(inputs))
    print(f"wrote {out} and {out.with_suffix('.tex')}")
    return 0


def _verify(config, summary, args: argparse.Namespace) -> int:
    from ghuda.report.reported import load_reported
    from ghuda.report.verify import DIFFERS, verdict_markdown, verdicts
    from ghuda.runs import write_text

    table, counts, notes = verdicts(config, summary["runs"], load_reported(args.reported))
    text = verdict_markdown(config, table, counts, notes)
    write_text(args.out, text)
    print(text)
    if settings(config).verify.fail_on_mismatch and counts[DIFFERS]:
        print(f"ghuda report verify: {counts[DIFFERS]} number(s) differ beyond the tolerance "
              "(verify.fail_on_mismatch is true)", file=sys.stderr)
        return 1
    return 0
