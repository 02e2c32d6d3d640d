"""ghuda.data."""
