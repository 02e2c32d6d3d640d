# Aggregate -> tables -> figures -> theory checks -> verify -> report.
# Outputs marked report() make up `snakemake --report report.html`; its landing page
# (workflow/report/workflow.rst) embeds LANDING, the main tables rendered as HTML.


rule pipeline_config:
    """The resolved config (defaults filled, --config applied) that every report step reads."""
    output:
        f"{RES}/pipeline_config.yaml",
    log:
        f"{RES}/logs/pipeline_config.log",
    params:
        text=lambda w: yaml.safe_dump(dict(config), sort_keys=True),
    localrule: True
    conda:
        ENV
    shell:
        "printf '%s' {params.text:q} > {output:q}.tmp && mv {output:q}.tmp {output:q}"
        " && echo wrote {output:q} > {log:q}"


rule aggregate:
    input:
        config=rules.pipeline_config.output[0],
        metrics=metrics_files(),
    output:
        **SUMMARY,
    log:
        f"{RES}/logs/aggregate.log",
    params:
        out=lambda w, output: Path(output.runs).parent,
    conda:
        ENV
    shell:
        "ghuda report aggregate --config {input.config:q} --out {params.out:q} > {log:q} 2>&1"


rule tables:
    input:
        config=rules.pipeline_config.output[0],
        reported=config["reported"],
        summary=list(SUMMARY.values()),
    output:
        [
            report(
                path,
                caption="../report/tables.rst",
                category="Tables",
                labels={"table": Path(path).name},
            )
            for path in TABLE_FILES
        ],
    log:
        f"{RES}/logs/tables.log",
    params:
        summary=lambda w, input: Path(input.summary[0]).parent,
        out=lambda w, output: Path(output[0]).parent,
    conda:
        ENV
    shell:
        "ghuda report tables --config {input.config:q} --summary {params.summary:q}"
        " --reported {input.reported:q} --out {params.out:q} > {log:q} 2>&1"


rule figure:
    input:
        config=rules.pipeline_config.output[0],
        summary=list(SUMMARY.values()),
        features=lambda w: feature_run_metrics() if w.figure == "tsne" else [],
    output:
        png=report(
            f"{FIGURES}/{{figure}}.png",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
        pdf=f"{FIGURES}/{{figure}}.pdf",
    wildcard_constraints:
        figure="|".join(FIGURE_NAMES),
    log:
        f"{RES}/logs/figures/{{figure}}.log",
    params:
        summary=lambda w, input: Path(input.summary[0]).parent,
        out=lambda w, output: Path(output.png).parent,
    conda:
        ENV
    shell:
        "ghuda report figure {wildcards.figure} --config {input.config:q}"
        " --summary {params.summary:q} --out {params.out:q} > {log:q} 2>&1"


rule theory:
    input:
        summary=list(SUMMARY.values()),
    output:
        table=report(f"{TABLES}/theory.md", caption="../report/theory.rst", category="Theory"),
        png=report(
            f"{FIGURES}/theory_violations.png",
            caption="../report/theory.rst",
            category="Theory",
        ),
        pdf=f"{FIGURES}/theory_violations.pdf",
    log:
        f"{RES}/logs/theory.log",
    benchmark:
        f"{RES}/benchmarks/theory.tsv"
    params:
        results=lambda w, input: Path(input.summary[0]).parent.parent,
        tables=lambda w, output: Path(output.table).parent,
        figures=lambda w, output: Path(output.png).parent,
        quick="--quick" if config["theory"]["quick"] else "",
    conda:
        ENV
    shell:
        "ghuda theory --results {params.results:q} --tables {params.tables:q}"
        " --figures {params.figures:q} {params.quick} > {log:q} 2>&1"


rule verify:
    input:
        config=rules.pipeline_config.output[0],
        reported=config["reported"],
        summary=list(SUMMARY.values()),
    output:
        report(f"{TABLES}/verify.md", caption="../report/verify.rst", category="Verify"),
    log:
        f"{RES}/logs/verify.log",
    params:
        summary=lambda w, input: Path(input.summary[0]).parent,
    conda:
        ENV
    shell:
        "ghuda report verify --config {input.config:q} --summary {params.summary:q}"
        " --reported {input.reported:q} --out {output:q} 2>&1 | tee {log:q}"


rule fidelity:
    """Released behaviour vs this config and the paper config, item by item (from the code)."""
    input:
        config=rules.pipeline_config.output[0],
        paper=PAPER_CONFIG,
    output:
        report(f"{TABLES}/fidelity.md", caption="../report/fidelity.rst", category="Fidelity"),
    log:
        f"{RES}/logs/fidelity.log",
    conda:
        ENV
    shell:
        "ghuda report fidelity --config {input.config:q} --paper {input.paper:q}"
        " --out {output:q} > {log:q} 2>&1"


if config.get("compute_budget"):

    rule compute_budget:
        input:
            config=rules.pipeline_config.output[0],
            target=config["compute_budget"]["config"],
            summary=list(SUMMARY.values()),
            cpu_passes=config["compute_budget"]["cpu_pass_csv"],
            gpu_steps=config["compute_budget"].get("gpu_csv", []),
        output:
            table=report(
                f"{TABLES}/compute_budget.md",
                caption="../report/compute_budget.rst",
                category="Compute budget",
            ),
            jobs=f"{TABLES}/compute_budget_jobs.csv",
        log:
            f"{RES}/logs/compute_budget.log",
        params:
            summary=lambda w, input: Path(input.summary[0]).parent,
        threads: 1
        conda:
            ENV
        shell:
            "ghuda report budget --config {input.config:q} --target {input.target:q}"
            " --summary {params.summary:q} --out {output.table:q} --jobs {output.jobs:q}"
            " > {log:q} 2>&1"


rule claims:
    """A verdict for every claim of the paper (tables/claims.md, .tex), computed from the other
    tables: it runs after every other step (theory, verify, extensions ...)."""
    input:
        config=rules.pipeline_config.output[0],
        paper=PAPER_CONFIG,
        summary=list(SUMMARY.values()),
        tables=TABLE_FILES,
        steps=CLAIMS_INPUTS,
    output:
        md=report(f"{TABLES}/claims.md", caption="../report/claims.rst", category="Claims"),
        tex=f"{TABLES}/claims.tex",
    log:
        f"{RES}/logs/claims.log",
    params:
        summary=lambda w, input: Path(input.summary[0]).parent,
        tables=lambda w, output: Path(output.md).parent,
        figures=lambda w: FIGURES,
        configfile=lambda w: CONFIGFILE,
        benchmark=lambda w: f"{RES}/benchmarks/theory.tsv",
        results=lambda w: RES,
    conda:
        ENV
    shell:
        "ghuda report claims --config {input.config:q} --tables {params.tables:q}"
        " --summary {params.summary:q} --paper {input.paper:q} --figures {params.figures:q}"
        " --configfile {params.configfile:q} --theory-benchmark {params.benchmark:q}"
        " --results {params.results:q} --out {output.md:q} > {log:q} 2>&1"


rule report:
    """An index of every table and figure with the headline numbers (tables/README.md)."""
    input:
        config=rules.pipeline_config.output[0],
        outputs=final_outputs(),
    output:
        report(f"{TABLES}/README.md", caption="../report/index.rst", category="Index"),
    log:
        f"{RES}/logs/report.log",
    params:
        tables=lambda w, output: Path(output[0]).parent,
        figures=lambda w: FIGURES,
    conda:
        ENV
    shell:
        "ghuda report index --config {input.config:q} --tables {params.tables:q}"
        " --figures {params.figures:q} --out {output:q} > {log:q} 2>&1"


rule landing:
    """The main tables rendered as HTML, embedded in the HTML report's landing page."""
    input:
        config=rules.pipeline_config.output[0],
        tables=TABLE_FILES,
        verify=rules.verify.output[0],
        claims=rules.claims.output.md,
    output:
        report(LANDING, caption="../report/landing.rst", category="Index"),
    log:
        f"{RES}/logs/landing.log",
    params:
        tables=lambda w, input: Path(input.verify).parent,
    localrule: True
    conda:
        ENV
    shell:
        "ghuda report landing --config {input.config:q} --tables {params.tables:q}"
        " --out {output:q} > {log:q} 2>&1"
