"""The Hydra sweep values `make roadmap` passes, from modernize.roadmap (so the Makefile holds no copy of them).

    python -m modernize.sweep --steps          # resnet50,recipe,...,separate_downsampling: +step=<this>
    python -m modernize.sweep --delta-lists separate_downsampling+silu separate_downsampling-gelu
                                               # [recipe,...,silu],[recipe,...]: "+delta=<this>" trains those labels

A module of its own because `python -m` of a module the package already imported (modernize.roadmap) warns.
"""

from __future__ import annotations

import argparse
import sys

from .roadmap import STEPS, label_deltas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--steps", action="store_true", help="the roadmap's steps, comma-separated")
    group.add_argument("--delta-lists", nargs="+", metavar="LABEL",
                       help="the +delta= sweep value that trains these row labels, e.g. separate_downsampling+silu")
    args = parser.parse_args(argv)
    try:
        print(",".join(STEPS) if args.steps else
              ",".join(f"[{','.join(label_deltas(label))}]" for label in args.delta_lists))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
