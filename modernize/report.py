"""`python -m modernize.report`: Result folders -> one self-contained HTML page. The code is
modernize.results.report."""

import sys

from .results.report import main

if __name__ == "__main__":
    sys.exit(main())
