"""`python -m modernize.export <run dir> --format timm|official|torchvision|safetensors`: a run's weights in a file
other libraries' classes load. The code is modernize.training.export."""

import sys

from .training.export import main

if __name__ == "__main__":
    sys.exit(main())
