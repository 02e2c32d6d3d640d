# GH / GH++ beyond classification (issue 16): retrieval with text feedback and detection.
# One job per run (`ghuda extension train`, run folder as in ghuda.extensions.loop, metrics.json
# last; a diverged run is recorded, as in train.smk); one report job writes extensions.md/.tex
# and the two extension figures. The embedded benchmarks (css_mini, det_mini) are generated in
# memory by the run; a paper dataset's entry names the command that fetches it (`fetch`).
# Runs are short and keep no checkpoint: a restarted job starts its run over.

if EXT_FETCH:

    rule extension_data:
        output:
            "{manifest}",
        wildcard_constraints:
            manifest="|".join(re.escape(f["manifest"]) for f in EXT_FETCH.values()),
        log:
            f"{RES}/logs/extension_data/{{manifest}}.log",
        params:
            command=lambda w: next(
                f["command"] for f in EXT_FETCH.values() if f["manifest"] == w.manifest
            ),
        conda:
            ENV
        shell:
            "{params.command} > {log:q} 2>&1"


rule extension_train:
    input:
        ext_inputs,
    output:
        f"{RES}/extensions/{EXT_WILDCARDS}/metrics.json",
    log:
        f"{RES}/logs/extensions/{EXT_WILDCARDS}.log",
    benchmark:
        f"{RES}/benchmarks/extensions/{EXT_WILDCARDS}.tsv"
    threads: lambda w: ext_run(w).resources.get("threads", 1)
    resources:
        gpu=lambda w: ext_run(w).resources.get("gpu", 0),
        mem_mb=lambda w: ext_run(w).resources.get("mem_mb", 2000),
        runtime=lambda w: ext_run(w).resources.get("runtime", 30),
    params:
        out=lambda w, output: Path(output[0]).parent,
        request=lambda w: yaml.safe_dump(ext_run(w).run_config, sort_keys=True),
        launcher=gpu_launcher,
    conda:
        ENV
    shell:
        """
        out={params.out:q}
        mkdir -p "$out"
        printf '%s' {params.request:q} > "$out/request.yaml"
        {params.launcher} ghuda extension train --config "$out/request.yaml" --out "$out" \
            --record-divergence > {log:q} 2>&1
        """


rule extension_report:
    input:
        config=rules.pipeline_config.output[0],
        runs=[f"{RES}/extensions/{key}/metrics.json" for key in EXT_RUNS],
    output:
        md=report(f"{TABLES}/extensions.md", caption="../report/extensions.rst",
                  category="Extensions"),
        tex=f"{TABLES}/extensions.tex",
        figures=[f"{FIGURES}/{n}.{ext}" for n in ("extension_conflict",
                 "extension_weights_vs_angle") for ext in ("png", "pdf")],
    log:
        f"{RES}/logs/extension_report.log",
    params:
        results=lambda w, input: Path(input.runs[0]).parents[4],
        tables=lambda w, output: Path(output.md).parent,
        figures=lambda w, output: Path(output.figures[0]).parent,
    conda:
        ENV
    shell:
        "ghuda extension report --config {input.config:q} --results {params.results:q}"
        " --tables {params.tables:q} --figures {params.figures:q} > {log:q} 2>&1"
