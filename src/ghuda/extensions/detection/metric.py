"""mAP@0.5 through torchmetrics' `MeanAveragePrecision` (pycocotools backend).

COCO-style AP (101-point interpolated precision) at the single IoU threshold 0.5, averaged over
classes; VOC07's evaluation uses 11-point AP (FIDELITY). VOC 'difficult' objects are passed as
COCO ``iscrowd`` ground truth: they count neither as positives nor, when matched, as false
positives (as in VOC), though pycocotools matches a detection to a crowd box by
intersection-over-detection-area rather than IoU.
"""

from __future__ import annotations

from torch import Tensor
from torchmetrics.detection import MeanAveragePrecision

from ghuda.extensions.detection.sets import Target


class Map50:
    """Accumulates detections and ground truth; `compute` gives mAP@0.5 in percent."""

    def __init__(self, max_detections: int = 100) -> None:
        self.metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox",
                                           iou_thresholds=[0.5],
                                           max_detection_thresholds=[1, 10, max_detections],
                                           backend="pycocotools")
        self.seen_objects = 0

    def update(self, preds: list[dict[str, Tensor]], targets: list[Target]) -> None:
        """`preds`: boxes, scores, labels per image; `targets`: boxes, labels, difficult."""
        self.metric.update(
            [{k: p[k].detach().cpu() for k in ("boxes", "scores", "labels")} for p in preds],
            [{"boxes": t["boxes"].cpu(), "labels": t["labels"].cpu(),
              "iscrowd": t["difficult"].cpu().long()} for t in targets])
        self.seen_objects += sum(int((~t["difficult"]).sum()) for t in targets)

    def compute(self) -> float:
        """mAP@0.5 in percent over everything passed to `update`."""
        if self.seen_objects == 0:
            raise ValueError("mAP is undefined without any (non-difficult) ground-truth object")
        return 100.0 * float(self.metric.compute()["map"])
