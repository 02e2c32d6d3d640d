"""The benchmark library that the scripts of benchmarks/ share: timing (`timing`), the
DANN-style harmonized step and its two-pass floor (`dann_step`), provenance (`provenance`),
CSV output (`csv_out`), and the sections of gpu_check.py (`gpu`).

The scripts run as ``python benchmarks/<name>.py``, so this package is importable beside them.
"""
