"""`python -m modernize.sweep`: `run <kind>` trains and tabulates a sweep (make roadmap, kernels, ablate); --steps,
--delta-lists, --launch print what it passes to Hydra. The code is modernize.training.sweeps."""

import sys

from .training.sweeps import main

if __name__ == "__main__":
    sys.exit(main())
