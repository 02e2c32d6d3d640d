"""GH / GH++ for object detection (issue 16): importing this registers the "detection" task."""

from ghuda.extensions.detection.task import (
    EMBEDDED_DEFAULTS,
    FIDELITY,
    PAPER_DEFAULTS,
    DetectionTask,
    build,
    fetch,
)

__all__ = ["EMBEDDED_DEFAULTS", "FIDELITY", "PAPER_DEFAULTS", "DetectionTask", "build",
           "fetch"]
