"""ghuda: regenerate every table and figure of a config.

    snakemake --cores all                                # configs/default.yaml (digits-mini, CPU)
    snakemake --configfile configs/paper.yaml --profile workflow/profiles/gpu-local
    snakemake --configfile configs/paper.yaml --profile workflow/profiles/slurm
    snakemake --report report.html                       # self-contained HTML report

Rules: data -> train (one job per batch of runs) -> aggregate -> tables, figures -> theory
-> verify -> report (tables/README.md). See workflow/rules/*.smk.
"""

import sys
from pathlib import Path

from snakemake.utils import min_version

from ghuda.pipeline.check import check_pipeline
from ghuda.config import ConfigError

min_version("9.0")

# A --configfile replaces the default config instead of being merged into it, so that a
# paper run never inherits the digits-mini grid.
if not workflow.overwrite_configfiles:

    configfile: "configs/default.yaml"


# Before any job is planned: the schema (workflow/schemas/config.schema.yaml, defaults filled),
# cross-references, registry names and every run config the grid expands to (the same check
# as `ghuda config check FILE`). A user error is one paragraph and exit status 2.
try:
    check_pipeline(config, source=", ".join(map(str, workflow.configfiles)) or "config",
                   root=Path(workflow.basedir))
except ConfigError as err:
    print(f"Pipeline config error: {err}\nNothing was run. Fix the config and run again "
          "(`ghuda config check FILE` checks a config without Snakemake).", file=sys.stderr)
    sys.exit(2)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/extensions.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
        rules.landing.output,


onsuccess:
    print(f"Done. Tables in {TABLES}/, figures in {FIGURES}/; "
          "`snakemake --report report.html` builds the HTML report.")
