"""Accuracy, mean per-class accuracy, and the three model-selection protocols (REFERENCE 1.6).

Every protocol is computed from the evaluation records of ``history.jsonl``:

* ``last``: the final iterate (the honest default);
* ``source_val``: the evaluation with the best held-out SOURCE validation score (no target
  labels involved);
* ``oracle``: the evaluation with the best TARGET score. This selects on target test labels,
  as the released code does; it is reported only labelled as such. For a method whose
  `Method.oracle_heads` names predictors (MCD's two heads, DWL's five predictors, switch
  ``method.params.oracle: released``), each evaluation also records every predictor's target
  scores (``target_acc@<head>``, ``target_mean_class_acc@<head>``) and the oracle is the best
  (evaluation, predictor) pair, as released (mcd/mcd.py 144-157, dwl/solver.py 536); its entry
  names the ``head``. ``last`` and ``source_val`` always use `Method.predict`.

Besides them, every registered unsupervised validator (`ghuda.engine.validators`: entropy,
information maximisation, SND, BNM, DEV, ...) is a protocol of its own name: the evaluation
with the best ``val_<name>`` score in the validator's direction. Validators use the target
evaluation images WITHOUT their labels and the source validation images with their source
labels; they never see a target label.

Ties go to the earliest evaluation. The selection score is ``train.selection_metric``
(overall accuracy, or mean per-class accuracy as VisDA reports).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ghuda.engine.data import eval_batches, subsample
from ghuda.engine.runtime import Runtime
from ghuda.engine.validators import SCORE_PREFIX, VALIDATORS, Evidence, scores
from ghuda.methods.base import Method
from ghuda.runs import atomic_write_bytes

SELECTIONS = {
    "last": "final iterate",
    "source_val": "best held-out source-validation accuracy",
    "oracle": "best target accuracy: selects on TARGET LABELS",
}


def validator_selection(name: str) -> str:
    """The `selection` text of validator `name`'s protocol."""
    direction = "highest" if VALIDATORS.get(name).higher_is_better else "lowest"
    return (f"{direction} {name} score: unsupervised validator (target images without labels, "
            "source validation with source labels; no target labels)")


def protocol_names() -> list[str]:
    """Every protocol of metrics.json: `SELECTIONS`, then the registered validators."""
    clash = set(SELECTIONS) & set(VALIDATORS.names())
    if clash:
        raise ValueError(f"validators {sorted(clash)} reuse a protocol name")
    return [*SELECTIONS, *VALIDATORS.names()]


def selection_text(name: str) -> str:
    """The `selection` text of protocol `name`."""
    return SELECTIONS[name] if name in SELECTIONS else validator_selection(name)


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
                ) -> tuple[Tensor, Tensor, Tensor]:
    """Argmax predictions, labels and float32 logits (on the CPU, for the validators) over a
    split (the model must be in eval mode)."""
    preds, labels, all_logits = [], [], []
    with torch.inference_mode():
        for x, y in batches:
            x = x.to(device, non_blocking=True)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                logits = model(x)
            preds.append(logits.argmax(dim=1).cpu())
            all_logits.append(logits.float().cpu())
            labels.append(y)
    return torch.cat(preds), torch.cat(labels).long(), torch.cat(all_logits)


HEAD_SEP = "@"


def head_names(record: dict[str, Any]) -> list[str]:
    """Predictors whose target scores an evaluation record holds (`Method.oracle_heads`)."""
    prefix = f"target_acc{HEAD_SEP}"
    return [k.removeprefix(prefix) for k in record if k.startswith(prefix)]


def protocols(evals: Sequence[dict[str, Any]], metric: str = "acc") -> dict[str, Any]:
    """The `protocols` block of metrics.json from the run's evaluation records.

    With per-predictor records (`head_names`), ``oracle`` is the best (evaluation, predictor)
    on the target score, ties to the earliest evaluation and the first predictor."""
    if not evals:
        raise ValueError("no evaluation records: cannot report any protocol")
    key = "acc" if metric == "acc" else "mean_class_acc"

    def entry(record: dict[str, Any], name: str, head: str | None = None) -> dict[str, Any]:
        suffix = "" if head is None else f"{HEAD_SEP}{head}"
        out = {"acc": record[f"target_acc{suffix}"],
               "mean_class_acc": record[f"target_mean_class_acc{suffix}"],
               "step": record["step"], "selection": selection_text(name)}
        if head is not None:
            out["head"] = head
        return out

    def best(field: str) -> dict[str, Any]:
        return max(evals, key=lambda r: (r[field], -r["step"]))

    def best_score(name: str) -> dict[str, Any]:
        """The best ``val_<name>`` in its direction (a missing score never wins), earliest."""
        sign = 1.0 if VALIDATORS.get(name).higher_is_better else -1.0

        def score(r: dict[str, Any]) -> float:
            value = r.get(f"{SCORE_PREFIX}{name}")
            return -float("inf") if value is None else sign * value

        return max(evals, key=lambda r: (score(r), -r["step"]))

    heads = head_names(evals[0])
    if heads:
        _, _, _, record, head = max(
            ((r[f"target_{key}{HEAD_SEP}{h}"], -r["step"], -j, r, h)
             for r in evals for j, h in enumerate(head_names(r))),
            key=lambda t: t[:3])
        oracle = entry(record, "oracle", head)
    else:
        oracle = entry(best(f"target_{key}"), "oracle")
    scored = [n for n in VALIDATORS.names()
              if any(r.get(f"{SCORE_PREFIX}{n}") is not None for r in evals)]
    return {"last": entry(evals[-1], "last"),
            "source_val": entry(best(f"source_val_{key}"), "source_val"),
            "oracle": oracle, **{n: entry(best_score(n), n) for n in scored}}


FEATURES_PER_DOMAIN = 1000


def on_device(x: Tensor, runtime: Runtime) -> Tensor:
    """`x` on the run's device, channels-last for 4-d images when the run uses it."""
    x = x.to(runtime.device, non_blocking=True)
    if runtime.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _with_heads(method: Method, heads: dict[str, list[Tensor]], x: Tensor) -> Tensor:
    """`method.predict(x)`, appending each `Method.oracle_heads` predictor's argmax to
    `heads` (nothing when the method gives none)."""
    per_head = method.oracle_heads(x)
    for name, logits in (per_head or {}).items():
        heads.setdefault(name, []).append(logits.argmax(dim=1).cpu())
    return method.predict(x)


def evaluate_splits(method: Method, splits: Any, runtime: Runtime, train: dict[str, Any]
                    ) -> dict[str, float | None]:
    """Overall and mean per-class accuracy on the target evaluation split and the source
    validation split (keys ``target_acc``, ``source_val_mean_class_acc``, ...), and every
    validator's score (``val_<name>``, `ghuda.engine.validators.scores`) from the logits of the
    same pass: the target's without their labels, the source validation's with theirs."""
    method.eval()
    out: dict[str, float | None] = {}
    outputs: dict[str, tuple[Tensor, Tensor]] = {}
    for prefix, ds in (("target", splits.target_eval), ("source_val", splits.source_val)):
        heads: dict[str, list[Tensor]] = {}
        model = method.predict if prefix == "source_val" else partial(_with_heads, method, heads)
        preds, labels, logits = predict_all(
            model, eval_batches(ds, train["eval_batch_size"], train["num_workers"]),
            runtime.device, runtime.channels_last, runtime.autocast())
        outputs[prefix] = logits, labels
        acc, mean_class = accuracies(preds, labels, splits.num_classes)
        out[f"{prefix}_acc"], out[f"{prefix}_mean_class_acc"] = acc, mean_class
        for name, chunks in heads.items():  # in the same pass: no extra data pass
            acc, mean_class = accuracies(torch.cat(chunks), labels, splits.num_classes)
            out[f"target_acc{HEAD_SEP}{name}"] = acc
            out[f"target_mean_class_acc{HEAD_SEP}{name}"] = mean_class
    out.update(scores(Evidence(target_logits=outputs["target"][0],
                               source_logits=outputs["source_val"][0],
                               source_labels=outputs["source_val"][1])))
    return out


def write_features(method: Method, splits: Any, runtime: Runtime, train: dict[str, Any],
                   path: Path) -> None:
    """features.npz: features and labels of a fixed subset of the source training and target
    evaluation images (the t-SNE figure)."""
    method.eval()
    arrays: dict[str, np.ndarray] = {}
    for name, ds in (("source", splits.source_train), ("target", splits.target_eval)):
        sub = torch.utils.data.Subset(ds, subsample(ds, FEATURES_PER_DOMAIN, train["seed"]))
        feats, labels = [], []
        with torch.inference_mode():
            for x, y in eval_batches(sub, train["eval_batch_size"], train["num_workers"]):
                with runtime.autocast():
                    f = method.features(x.to(runtime.device))
                feats.append(f.float().cpu())
                labels.append(y.long())
        arrays[name] = torch.cat(feats).numpy().astype(np.float32)
        arrays[f"{name}_labels"] = torch.cat(labels).numpy().astype(np.int64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def target_images(splits: Any, runtime: Runtime, train: dict[str, Any]) -> Iterator[Tensor]:
    """Every target training image in dataset order, on the device, in batches; no labels
    (`Method.refresh`)."""
    for x, _ in eval_batches(splits.target_train, train["eval_batch_size"],
                             train["num_workers"]):
        yield on_device(x, runtime)
