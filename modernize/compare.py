"""`python -m modernize.compare`: one label's runs in two sweeps, paired by seed (B - A, its interval, a paired test).
The code is modernize.results.compare."""

import sys

from .results.compare import main

if __name__ == "__main__":
    sys.exit(main())
