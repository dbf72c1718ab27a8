"""`python -m modernize.tabulate`: A sweep's runs -> its table, CSV, fidelity (or kernel trend) line and figure, beside
the paper. The code is modernize.results.tabulate."""

import sys

from .results.tabulate import main

if __name__ == "__main__":
    sys.exit(main())
