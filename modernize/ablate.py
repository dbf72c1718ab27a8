"""`python -m modernize.ablate`: The ablation matrix: the +delta= lists that train it, and its table and figure. The
code is modernize.results.ablation."""

import sys

from .results.ablation import main

if __name__ == "__main__":
    sys.exit(main())
