"""`python -m modernize.peers <peers sweep> [--convnext-from <roadmap sweep>] --out <folder>`: the paper's comparisons
(Tables 1 and 2) from a `make peers` sweep. The code is modernize.results.peers_table."""

import sys

from .results.peers_table import main

if __name__ == "__main__":
    sys.exit(main())
