"""GH / GH++ for image retrieval with text feedback (issue 16): TIRG on css_mini / CSS3D.

This package's namespace is torch-free (`defaults`: run configs and fidelity rows); the task
and its "retrieval" builder are in `task` (importing it registers the builder).
"""

from ghuda.extensions.retrieval.defaults import EMBEDDED_DEFAULTS, FIDELITY, PAPER_DEFAULTS

__all__ = ["EMBEDDED_DEFAULTS", "FIDELITY", "PAPER_DEFAULTS"]
