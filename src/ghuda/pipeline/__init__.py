"""ghuda.pipeline: the pipeline config (configs/*.yaml) and the runs its grid expands to.

`config` loads and validates a pipeline config, `grid` expands it into runs and their run
configs, `check` validates every run config before anything trains. The workflow reads these
before training; `ghuda.report` reads them to know which runs to collect.
"""
