"""`python -m modernize.sweep`: The Hydra sweep values `make roadmap` passes (steps, delta lists, the launcher). The
code is modernize.results.sweep."""

import sys

from .results.sweep import main

if __name__ == "__main__":
    sys.exit(main())
