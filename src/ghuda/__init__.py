"""ghuda: reproducibility artifact of Gradient Harmonization in UDA (GH / GH++, TPAMI 2024)."""

__version__ = "0.1.0"
