"""`python -m modernize.bench`: `make bench`, training throughput of our models and what a profile's seed costs. The
benchmark lives outside the library, in the repository's benchmarks/bench.py (as timm's benchmark.py); this runs it."""
import runpy
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
if __name__ == "__main__":
    if not BENCH.is_file():
        sys.exit(f"error: {BENCH} is not here: the benchmarks are in modernize's repository (git clone), not in an "
                 f"installed package")
    sys.argv[0] = str(BENCH)
    runpy.run_path(str(BENCH), run_name="__main__")
