"""ghuda.theory."""
