"""ghuda: regenerate every table and figure of a config.

    snakemake --cores all                                # configs/default.yaml (digits-mini, CPU)
    snakemake --configfile configs/paper.yaml --profile workflow/profiles/gpu-local
    snakemake --configfile configs/paper.yaml --profile workflow/profiles/slurm
    snakemake --report report.html                       # self-contained HTML report

Rules: data -> train (one job per run) -> aggregate -> tables, figures -> theory -> verify
-> report (tables/README.md). See workflow/rules/*.smk.
"""

from snakemake.utils import min_version, validate

min_version("9.0")

# A --configfile replaces the default config instead of being merged into it, so that a
# paper run never inherits the digits-mini grid.
if not workflow.overwrite_configfiles:

    configfile: "configs/default.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report.output,


onsuccess:
    print(f"Done. Tables in {TABLES}/, figures in {FIGURES}/; "
          "`snakemake --report report.html` builds the HTML report.")
