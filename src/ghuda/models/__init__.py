"""ghuda.models."""
