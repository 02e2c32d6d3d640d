"""The sections of benchmarks/gpu_check.py, one module each (`step`, `loader`, `determinism`,
`digits`, `backbone`), each a ``run(ctx) -> list[Row]``; `rows` holds the row, the sizes and
the CSV, `engine` what the sections that train through the engine share."""
