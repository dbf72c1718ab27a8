"""`python -m modernize.export <run dir> --format timm|official|torchvision|safetensors`: a run's weights in a file
other libraries' classes load. The code is modernize.results.export."""

import sys

from .results.export import main

if __name__ == "__main__":
    sys.exit(main())
