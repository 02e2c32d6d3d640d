"""ghuda.data: the embedded digits-mini benchmark, the paper datasets' recipes, one API.

    from ghuda import data
    data.datasets()                      # ['digits_mini', 'office31', ...]
    data.domains("digits_mini")          # ['synth', 'optdigits', 'optdigits_m', 'mnist']
    ds = data.load("digits_mini", "synth", "train")   # (3x32x32 in [-1, 1], label)
    images, labels = ds.tensors          # whole split in memory (digit datasets)
    task = data.uda_splits("digits_mini", "synth", "optdigits")

Data root: `data/` at the repository root, or `$GHUDA_DATA`, or `root=`. See docs/data.md.
"""

from ghuda.data.api import (
    UDASplits,
    class_names,
    data_version,
    dataset_dir,
    datasets,
    domains,
    fingerprint,
    load,
    num_classes,
    require,
    uda_splits,
)
from ghuda.data.paths import DatasetNotFoundError, data_root

__all__ = [
    "DatasetNotFoundError",
    "UDASplits",
    "class_names",
    "data_root",
    "data_version",
    "dataset_dir",
    "datasets",
    "domains",
    "fingerprint",
    "load",
    "num_classes",
    "require",
    "uda_splits",
]
