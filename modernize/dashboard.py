"""`python -m modernize.dashboard`: A sweep's W&B workspace. The code is modernize.results.dashboard."""

import sys

from .results.dashboard import main

if __name__ == "__main__":
    sys.exit(main())
