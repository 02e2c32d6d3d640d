# Train: one job per run. The request file is the run config (docs/config.md) the grid gives
# this run; `ghuda train` writes the run folder (docs/run-outputs.md), metrics.json last.
# Resumable: a requeued or restarted job reruns the same command and the engine resumes from
# the checkpoint in the run folder (Snakemake removes only metrics.json, the output). A copy of
# the request in the folder tells a resume from a changed config, which starts over (--fresh).

rule run_request:
    output:
        f"{RES}/requests/{RUN_WILDCARDS}.yaml",
    log:
        f"{RES}/logs/requests/{RUN_WILDCARDS}.log",
    params:
        run_config=lambda w: run_of(w).run_config,
    localrule: True
    run:
        write_yaml(output[0], params.run_config)
        Path(log[0]).write_text(f"wrote {output[0]}\n")


rule train:
    input:
        request=f"{RES}/requests/{RUN_WILDCARDS}.yaml",
        data=ancient(lambda w: manifest_of(w.dataset)),
    output:
        f"{RES}/{RUN_WILDCARDS}/metrics.json",
    log:
        f"{RES}/logs/train/{RUN_WILDCARDS}.log",
    threads: lambda w: run_of(w).resources["threads"]
    resources:
        gpu=lambda w: run_of(w).resources["gpu"],
        mem_mb=lambda w: run_of(w).resources["mem_mb"],
        runtime=lambda w: run_of(w).resources["runtime"],
    params:
        out=lambda w, output: Path(output[0]).parent,
        launcher=gpu_launcher,
    conda:
        ENV
    shell:
        """
        mkdir -p {params.out:q}
        fresh=""
        if ! cmp -s {input.request:q} {params.out:q}/request.yaml; then
            fresh="--fresh"
            cp {input.request:q} {params.out:q}/request.yaml
        fi
        {params.launcher} ghuda train --config {input.request:q} --out {params.out:q} \
            --no-progress $fresh > {log:q} 2>&1
        """
