"""`python -m modernize.bench`: `make bench`: training throughput of our models, and what a profile's seed costs. The
code is modernize.results.bench."""

from .results.bench import main

if __name__ == "__main__":
    main()
