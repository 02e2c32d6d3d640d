"""Accuracy, mean per-class accuracy, and the three model-selection protocols (REFERENCE 1.6).

Every protocol is computed from the evaluation records of ``history.jsonl``:

* ``last``: the final iterate (the honest default);
* ``source_val``: the evaluation with the best held-out SOURCE validation score (no target
  labels involved);
* ``oracle``: the evaluation with the best TARGET score. This selects on target test labels,
  as the released code does; it is reported only labelled as such.

Ties go to the earliest evaluation. The selection score is ``train.selection_metric``
(overall accuracy, or mean per-class accuracy as VisDA reports).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

SELECTIONS = {
    "last": "final iterate",
    "source_val": "best held-out source-validation accuracy",
    "oracle": "best target accuracy: selects on TARGET LABELS",
}


def accuracies(preds: Tensor, labels: Tensor, num_classes: int) -> tuple[float, float]:
    """(overall accuracy, mean per-class accuracy) in percent.

    The per-class mean is over the classes present in `labels`.
    """
    if labels.numel() == 0:
        raise ValueError("cannot evaluate on an empty split")
    correct = preds == labels
    per_class_total = torch.bincount(labels, minlength=num_classes).double()
    per_class_correct = torch.bincount(labels[correct], minlength=num_classes).double()
    present = per_class_total > 0
    mean_class = (per_class_correct[present] / per_class_total[present]).mean()
    return 100.0 * float(correct.double().mean()), 100.0 * float(mean_class)


def predict_all(model: torch.nn.Module, batches: Iterable[tuple[Tensor, Tensor]],
                device: torch.device, channels_last: bool, autocast: Any
                ) -> tuple[Tensor, Tensor]:
    """Argmax predictions and labels over a split (the model must be in eval mode)."""
    preds, labels = [], []
    with torch.inference_mode():
        for x, y in batches:
            x = x.to(device, non_blocking=True)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                logits = model(x)
            preds.append(logits.argmax(dim=1).cpu())
            labels.append(y)
    return torch.cat(preds), torch.cat(labels).long()


def protocols(evals: Sequence[dict[str, Any]], metric: str = "acc") -> dict[str, Any]:
    """The `protocols` block of metrics.json from the run's evaluation records."""
    if not evals:
        raise ValueError("no evaluation records: cannot report any protocol")
    key = "acc" if metric == "acc" else "mean_class_acc"

    def entry(record: dict[str, Any], name: str) -> dict[str, Any]:
        return {"acc": record["target_acc"], "mean_class_acc": record["target_mean_class_acc"],
                "step": record["step"], "selection": SELECTIONS[name]}

    def best(field: str) -> dict[str, Any]:
        return max(evals, key=lambda r: (r[field], -r["step"]))

    return {"last": entry(evals[-1], "last"),
            "source_val": entry(best(f"source_val_{key}"), "source_val"),
            "oracle": entry(best(f"target_{key}"), "oracle")}
