"""GH / GH++ for image retrieval with text feedback (issue 16): TIRG on css_mini / CSS3D.

Importing this package registers the "retrieval" builder (`task.build`).
"""

from ghuda.extensions.retrieval.task import (
    EMBEDDED_DEFAULTS,
    FIDELITY,
    PAPER_DEFAULTS,
    RetrievalTask,
    build,
    fetch,
)

__all__ = ["EMBEDDED_DEFAULTS", "FIDELITY", "PAPER_DEFAULTS", "RetrievalTask", "build", "fetch"]
