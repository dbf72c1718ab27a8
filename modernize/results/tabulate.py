"""Tabulate a finished (or partly finished) sweep next to the paper: roadmap.md, roadmap.csv, roadmap.png, and the
summary line's CSV (fidelity.csv for a roadmap, trend.csv for a kernel sweep).

    python -m modernize.tabulate experiments/runs/<sweep> --out experiments/roadmap/<profile>-<data>

Reading the runs is modernize.training.runs, the rows modernize.results.roadmap_table, the summary lines
modernize.results.fidelity, the figure modernize.results.figures, the W&B table run and the README block
modernize.results.publish; this module only says what goes where.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io import atomic_write_text
from . import fidelity, roadmap_table
from .columns import one_row_csv
from .figures import roadmap_figure
from .peers_table import swin_t_row
from .pooled import report_incomplete
from .publish import fill_readme_block, upload_table_run
from .roadmap_table import ROADMAP
from ..training.runs import collect


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modernize.tabulate", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, help="output folder (default: the sweep folder)")
    parser.add_argument("--by-kernel", action="store_true", help="one row per depthwise kernel size (make kernels)")
    parser.add_argument("--wandb", default="disabled", help="W&B mode for the table run: auto|online|offline|disabled")
    parser.add_argument("--project", help="W&B project of the table run (default: the runs' logger.wandb.project)")
    parser.add_argument("--entity", help="W&B entity of the table run (default: the runs' logger.wandb.entity)")
    parser.add_argument("--readme", type=Path, help="also copy the fidelity (or kernel trend) line and table into "
                        "this file, between its '<!-- roadmap-table: <out>/roadmap.md -->' and "
                        "'<!-- /roadmap-table -->' lines")
    return parser


def summary_line(table: list[dict], by_kernel: bool, out: Path, beside: list[dict] = ()) -> tuple[str, dict | None]:
    """The line at the top of the table, written with its numbers as a one-row CSV: the fidelity line of a roadmap
    (fidelity.csv), the kernel sweep's own question, does 7 beat 3 and does it saturate past 7 (trend.csv). Returns
    the line and the fidelity score (None for a kernel sweep). `beside`: Swin-T's row where make peers trained it
    with the roadmap's settings (modernize.results.peers_table.swin_t_row)."""
    if by_kernel:
        trend = fidelity.kernel_trend(table)
        atomic_write_text(out / "trend.csv", one_row_csv(roadmap_table.TREND_FIELDS, roadmap_table.trend_record(trend)))
        return fidelity.kernel_line(trend), None
    score = fidelity.score(table, beside=beside)
    atomic_write_text(out / "fidelity.csv",
                      one_row_csv(roadmap_table.FIDELITY_FIELDS, roadmap_table.fidelity_record(score)))
    return fidelity.line(score), score


def main(argv: list[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a sweep folder (expected experiments/runs/<sweep>)", file=sys.stderr)
        return 2
    runs = collect(args.sweep_dir, args.by_kernel)
    if not runs:
        print(f"error: no runs under {args.sweep_dir}", file=sys.stderr)
        return 2
    table = roadmap_table.roadmap_rows(runs)
    out = args.out or args.sweep_dir
    beside = [] if args.by_kernel else swin_t_row(args.sweep_dir)
    lead, score = summary_line(table, args.by_kernel, out, beside)
    markdown = roadmap_table.roadmap_markdown(args.sweep_dir.name, table, lead)
    atomic_write_text(out / "roadmap.md", markdown)
    atomic_write_text(out / "roadmap.csv", ROADMAP.csv(table))
    roadmap_figure(table, out / "roadmap.png", args.sweep_dir.name, lead, swin_t=beside[0] if beside else None)
    if args.wandb != "disabled":
        upload_table_run(table, args.sweep_dir, args.wandb, score, out, args.project, args.entity)
    if args.readme is not None:
        fill_readme_block(args.readme, out / "roadmap.md",
                          [roadmap_table.lead_block(lead), "", *ROADMAP.markdown(table).splitlines()])
    print(markdown)
    return report_incomplete(table, "label")
