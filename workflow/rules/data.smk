# Data: one rule per dataset producing its manifest (digits-mini through DVC / `ghuda data`).
# Train jobs depend on the manifest through ancient(), so `dvc pull` or a rebuild that touches
# the data files never retrains finished runs; only a missing manifest triggers this rule.

# One rule per manifest: entries that name one registered dataset (the regime ladder's rungs)
# share its data.
_DATA_RULES = {}
for _ds, _block in config["datasets"].items():
    _DATA_RULES.setdefault(_block["data"]["manifest"], (_ds, _block))

for _ds, _block in _DATA_RULES.values():

    rule:
        name:
            f"data_{_ds}"
        output:
            _block["data"]["manifest"],
        log:
            f"{RES}/logs/data/{_ds}.log",
        params:
            command=_block["data"]["command"],
        localrule: True
        conda:
            ENV
        shell:
            "({params.command}) > {log} 2>&1"
