"""`python -m ghuda` runs the command-line interface."""

import sys

from ghuda.cli import main

sys.exit(main())
