"""ghuda.report."""
