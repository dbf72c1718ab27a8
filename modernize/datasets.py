"""`python -m modernize.datasets`: `--check <root>`: the images of an image folder that do not decode. The code is
modernize.data.datasets."""

import sys

from .data.datasets import main

if __name__ == "__main__":
    sys.exit(main())
