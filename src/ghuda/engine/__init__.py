"""ghuda.engine."""
