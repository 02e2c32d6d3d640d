# Train: one job per run; `ghuda train` writes the run folder (docs/run-outputs.md),
# metrics.json last. The job first writes its run config (docs/config.md, from the grid) to
# request.yaml in the run folder; Snakemake reruns the job when that config changes (params).
# A diverged run (non-finite loss) is a result: --record-divergence writes a metrics.json with
# status "diverged" (docs/run-outputs.md), so the job succeeds and the tables count it.
# Resumable: a requeued or restarted job reruns the same command and the engine resumes from
# the checkpoint in the run folder (Snakemake removes only metrics.json, the output). A
# request.yaml that differs from the new one means the config changed: start over (--fresh).


rule train:
    input:
        data=ancient(lambda w: manifest_of(w.dataset)),
    output:
        f"{RES}/{RUN_WILDCARDS}/metrics.json",
    log:
        f"{RES}/logs/train/{RUN_WILDCARDS}.log",
    benchmark:
        f"{RES}/benchmarks/train/{RUN_WILDCARDS}.tsv"
    threads: lambda w: run_of(w).resources["threads"]
    resources:
        gpu=lambda w: run_of(w).resources["gpu"],
        mem_mb=lambda w: run_of(w).resources["mem_mb"],
        runtime=lambda w: run_of(w).resources["runtime"],
    params:
        out=lambda w, output: Path(output[0]).parent,
        request=lambda w: yaml.safe_dump(run_of(w).run_config, sort_keys=True),
        launcher=gpu_launcher,
    conda:
        ENV
    shell:
        """
        out={params.out:q}
        mkdir -p "$out"
        fresh=""
        if ! printf '%s' {params.request:q} | cmp -s - "$out/request.yaml"; then
            fresh="--fresh"
            printf '%s' {params.request:q} > "$out/request.yaml.tmp"
            mv "$out/request.yaml.tmp" "$out/request.yaml"
        fi
        {params.launcher} ghuda train --config "$out/request.yaml" --out "$out" \
            --no-progress --record-divergence $fresh > {log:q} 2>&1
        """
