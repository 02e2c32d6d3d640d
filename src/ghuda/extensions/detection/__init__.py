"""GH / GH++ for object detection (issue 16): SSD on det_mini / PASCAL VOC.

This package's namespace is torch-free (`defaults`: run configs and fidelity rows); the task
and its "detection" builder are in `task` (importing it registers the builder).
"""

from ghuda.extensions.detection.defaults import EMBEDDED_DEFAULTS, FIDELITY, PAPER_DEFAULTS

__all__ = ["EMBEDDED_DEFAULTS", "FIDELITY", "PAPER_DEFAULTS"]
