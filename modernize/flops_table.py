"""`python -m modernize.flops_table`: `make flops`: every step's params and GFLOPs beside the paper's. The code is
modernize.results.flops_table."""

from .results.flops_table import main

if __name__ == "__main__":
    main()
