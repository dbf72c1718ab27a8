"""`python -m modernize.sweep`: The Hydra sweep values `make roadmap` passes (steps, delta lists, the launcher). The
code is modernize.training.launch."""

import sys

from .training.launch import main

if __name__ == "__main__":
    sys.exit(main())
