# Train: one job per batch of runs (ghuda.pipeline.batches: the runs of one variant whose seeds
# fall in one block of `train_batch_size`), one `ghuda train-batch` process per job (one
# Python start and torch import, the data read once). Each run is trained exactly as
# `ghuda train` would and writes its own run folder (docs/run-outputs.md), metrics.json last,
# and its own log under logs/train/. The job's requests (each run's folder, log and run config
# from the grid, docs/config.md) are a parameter: Snakemake reruns a batch when a run's config
# changes or the batch gains or loses a run; in the rerun, runs whose request.yaml holds the
# same config and that completed are skipped, a run whose config changed starts over, an
# interrupted one resumes from its checkpoint. The job's output is a marker
# (batches/<batch>.json), not the runs' metrics.json, which Snakemake would delete before
# rerunning the batch. A diverged run (non-finite loss) is a result: its metrics.json has
# status "diverged" (docs/run-outputs.md) and the batch goes on. Per-run wall time is in each
# metrics.json's cost block; benchmarks/train/ times each batch.


rule train:
    input:
        data=ancient(lambda w: manifest_of(w.dataset)),
    output:
        f"{RES}/batches/{BATCH_WILDCARDS}.json",
    log:
        f"{RES}/logs/train/{BATCH_WILDCARDS}.log",
    benchmark:
        f"{RES}/benchmarks/train/{BATCH_WILDCARDS}.tsv"
    threads: lambda w: batch_of(w).resources["threads"]
    resources:
        gpu=lambda w: batch_of(w).resources["gpu"],
        mem_mb=lambda w: batch_of(w).resources["mem_mb"],
        runtime=lambda w: batch_of(w).resources["runtime"],
    params:
        requests=lambda w: batch_of(w).requests(RES),
        launcher=gpu_launcher,
    conda:
        ENV
    shell:
        "printf '%s' {params.requests:q} | {params.launcher} ghuda train-batch --requests -"
        " --done {output:q} > {log:q} 2>&1"
