"""Beyond the paper's one path: each delta added alone to ResNet-50 with the modern recipe (add-one) and removed alone
from ConvNeXt-T (leave-one-out), beside the paper's step change. docs/ablation.md says what each row measures.

    python -m modernize.ablate --delta-lists          # the +delta= sweep value that trains every run (make ablate)
    python -m modernize.ablate --labels               # the run labels, one a line
    python -m modernize.ablate experiments/runs/ablate-<profile>-<data> --out experiments/ablate/<profile>-<data>

The plan is data from modernize.design.roadmap: a delta with prerequisites (REQUIRES) is added together with them and
compared with the run that has only the prerequisites ('recipe+depthwise+kernel_size' against 'recipe+depthwise');
removing a delta removes the deltas that need it too ('separate_downsampling-inverted_bottleneck-move_up_dwconv'),
and the row says so. Every run is labelled by modernize.design.roadmap.run_label, so its folder says what it is.
Effects are signed so that positive means the delta helps: (with it) - (without it), paired by seed, with the 95%
t-interval of the per-seed differences and a paired t-test (modernize.results.stats.change_between).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..design.ablation_plan import ADD_ANCHOR, ANCHOR_NAMES, Comparison, comparisons, delta_lists, labels
from ..design.roadmap import DELTAS, STEPS, paper_step
from ..io import atomic_write_text
from .columns import EMA_NOTE, EMA_TOP1, Column, Page, Table, has_ema, pooled_top1_columns, significance_cell
from .figures import ablation_figure
from .pooled import pool_seeds, report_incomplete
from ..training.runs import collect
from .stats import MIN_SEEDS, SIGNIFICANCE_LEVEL, change_between, paired, paper_change
def role(label: str) -> str:
    """What a run is in the matrix (the runs table's 'role' column)."""
    parts = []
    if label in ANCHOR_NAMES:
        parts.append(f"anchor: {ANCHOR_NAMES[label]}")
    for c in comparisons():
        if c.run_label == label:
            parts.append(f"{'add' if c.direction == 'add' else 'remove'} {c.delta}")
        elif c.direction == "add" and c.reference_label == label and label != ADD_ANCHOR:
            parts.append(f"base of add {c.delta}")
    return "; ".join(parts) or "not in the plan"


def section(delta: str) -> str:
    """The paper section a delta comes from ('2.3'): its roadmap step's in modernize/reference/paper.yaml."""
    return (paper_step(delta) or {}).get("section", "")


def paper_step_change(delta: str) -> float | None:
    """Figure 2's change at the roadmap step of this delta (its top-1 minus the previous step's)."""
    if delta not in STEPS:
        return None
    here, before = paper_step(delta), paper_step(STEPS[STEPS.index(delta) - 1])
    return paper_change(here and here["top1"], before and before["top1"])


# --------------------------------------------------------------------------------------------------- tables
def run_rows(collected: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """{label: row} for every run label of the plan (and any other run found), seeds pooled."""
    return {label: {"run": label, "role": role(label), **pool_seeds(collected.get(label, []), ("params", "gflops_224"))}
            for label in dict.fromkeys([*labels(), *sorted(collected)])}


def status(row: dict | None) -> str:
    if row is None or (row["n"] == 0 and not row["failed"] and not row["unfinished"]):
        return "missing"
    if row["n"] == 0:
        return "failed" if row["failed"] else "unfinished"
    return "ok"


def effect(c: Comparison, rows: dict[str, dict]) -> dict[str, Any]:
    """The comparison's effect (with - without the delta) on the seeds both runs have."""
    run, ref = rows.get(c.run_label), rows.get(c.reference_label)
    states = {status(run), status(ref)}
    out: dict[str, Any] = {"effect": None, "low": None, "high": None, "p": None, "significant": None, "n": 0,
                           "status": "ok" if states == {"ok"} else next(s for s in ("failed", "unfinished", "missing")
                                                                        if s in states)}
    if out["status"] != "ok":
        return out
    with_, without = (run, ref) if c.direction == "add" else (ref, run)
    if not paired(with_["top1_by_seed"], without["top1_by_seed"]):  # an effect here is always a paired one
        out["status"] = "no common seed"
        return out
    change = change_between(with_["top1_by_seed"], without["top1_by_seed"])
    out.update(effect=change.change, low=change.low, high=change.high, p=change.p, significant=change.significant,
               n=change.n)
    return out


# a delta the add-one base already has (the training recipe): no comparison to make
NO_COMPARISON = {"effect": None, "low": None, "high": None, "p": None, "significant": None, "n": 0,
                 "status": "base has it"}


def ablation_rows(collected: dict[str, list[dict]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per delta, one row per run)."""
    runs_by_label = run_rows(collected)
    adds = {c.delta: c for c in comparisons() if c.direction == "add"}
    removes = {c.delta: c for c in comparisons() if c.direction == "remove"}
    table = []
    for delta in DELTAS:
        row: dict[str, Any] = {"delta": delta, "section": section(delta), "paper_change": paper_step_change(delta)}
        for direction, plan in (("add", adds), ("remove", removes)):
            c = plan.get(delta)
            result = effect(c, runs_by_label) if c else NO_COMPARISON
            row.update({f"{direction}_{k}": v for k, v in result.items()})
            row[f"{direction}_run"] = c.run_label if c else ""
            row[f"{direction}_reference"] = c.reference_label if c else ""
            row[f"{direction}_extra"] = " ".join(c.extra) if c else ""
        table.append(row)
    return table, list(runs_by_label.values())


def _effect_cell(direction: str):
    def cell(r: dict) -> str:
        if r.get(f"{direction}_effect") is None:
            return r.get(f"{direction}_status", "")
        text = f"{r[f'{direction}_effect']:+.2f}"
        if r.get(f"{direction}_low") is not None:
            text += f" [{r[f'{direction}_low']:+.2f}, {r[f'{direction}_high']:+.2f}]"
        return text
    return cell


def _run_cell(direction: str):
    def cell(r: dict) -> str:
        if not r.get(f"{direction}_run"):
            return ""
        return f"{r[f'{direction}_run']} vs {r[f'{direction}_reference']}"
    return cell


def _comparison_columns(direction: str, runs: str, gain: str, significant: str, page_run: str,
                        page_reference: str | None, page_suffix: str) -> tuple[Column, ...]:
    """One comparison's columns ("add" or "remove"): which run against which, its gain [95% CI] and its test. The
    report page shows the run (and for "add" its reference) under `page_run` / `page_reference`, and its other
    headers end in `page_suffix`, which keeps the two comparisons' headers apart."""
    return (
        Column(None, f"{runs}: run vs reference", _run_cell(direction), align="left"),
        Column(f"{direction}_run", page=page_run),
        Column(f"{direction}_reference", page=page_reference),
        Column(f"{direction}_extra"),
        Column(f"{direction}_effect", f"{gain} [95% CI]", _effect_cell(direction),
               page=Page(gain, (f"{direction}_effect",), "+.2f")),
        Column(f"{direction}_low", page=Page(f"95% CI{page_suffix}", (f"{direction}_low", f"{direction}_high"),
                                             "+.2f", ("[", ", ", "]"))),
        Column(f"{direction}_high"), Column(f"{direction}_p", fmt=".3f", page=f"p{page_suffix}"),
        Column(f"{direction}_significant", f"{significant} (p)",
               significance_cell(f"{direction}_p", f"{direction}_significant", f"{direction}_effect"), align="left",
               page=Page(f"significant{page_suffix}", (f"{direction}_significant",))),
        Column(f"{direction}_n"), Column(f"{direction}_status", page=f"status{page_suffix}"),
    )


# One row per delta: ablation.csv has every named column, ablation.md every column with a header, the report page
# every column with a page, all in this order.
ABLATION = Table((
    Column("delta", "delta", align="left", page=True),
    Column("section", "paper §", align="left", page=True),
    *_comparison_columns("add", "added alone", "gain added alone", "significant added", "added alone: run", "vs",
                         ""),
    *_comparison_columns("remove", "removed from ConvNeXt-T", "gain in ConvNeXt-T", "significant removed",
                         "removed from ConvNeXt-T: run", None, " "),
    Column("paper_change", "paper step change", "+.1f", page=True),
), key="delta")

# One row per run of the plan (ablation_runs.csv, the markdown's "Runs" section).
ABLATION_RUNS = Table((
    Column("run", "run", align="left", page=True),
    Column("role", "role", align="left", page=True),
    *pooled_top1_columns("top-1"),
    EMA_TOP1,
    Column("params", "params", ",.0f", page=True),
    Column("gflops_224", "GFLOPs 224", ".2f", page=True),
    Column("error", page=True),
), key="run", page_order=("run", "role", "n", "top1_mean", "params", "gflops_224", "failed", "unfinished", "error"))


def ablation_markdown(table: list[dict], run_rows: list[dict], title: str) -> str:
    seeds = sorted({s for r in run_rows for s in r["top1_by_seed"]}, key=str)
    return (
        f"# {title}\n\nThe ablation matrix (modernize.ablate, docs/ablation.md): each delta added alone to ResNet-50 "
        f"with the modern recipe, and removed alone from ConvNeXt-T, beside the paper's change at its roadmap step. "
        f"A gain is (with the delta) - (without it) in top-1 points, positive where the delta helps: the mean of "
        f"the per-seed differences with its 95% t-interval; 'significant' is a paired t-test at "
        f"p < {SIGNIFICANCE_LEVEL} (needs {MIN_SEEDS}+ seeds with some variance). "
        f"A delta with prerequisites is added with them and compared with the run that has only them; removing a "
        f"delta removes the deltas that need it too: both show in the run labels. Seeds: "
        f"{', '.join(map(str, seeds)) or 'none finished'}."
        f"{' ' + EMA_NOTE if has_ema(run_rows) else ''}\n\n"
        + ABLATION.markdown(table)
        + "\n## Runs\n\n" + ABLATION_RUNS.markdown(run_rows)
    )


def write(collected: dict[str, list[dict]], out: Path, title: str) -> tuple[list[dict], list[dict]]:
    """ablation.md, ablation.csv, ablation_runs.csv and ablation.png of a sweep's runs (runs.collect)."""
    table, run_rows = ablation_rows(collected)
    atomic_write_text(out / "ablation.md", ablation_markdown(table, run_rows, title))
    atomic_write_text(out / "ablation.csv", ABLATION.csv(table))
    atomic_write_text(out / "ablation_runs.csv", ABLATION_RUNS.csv(run_rows))
    ablation_figure(table, out / "ablation.png", title)
    return table, run_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, nargs="?", help="the ablation's sweep folder: tabulate it")
    parser.add_argument("--out", type=Path, help="output folder (default: the sweep folder)")
    parser.add_argument("--delta-lists", action="store_true", help="print the +delta= sweep value and exit")
    parser.add_argument("--labels", action="store_true", help="print the run labels, one a line, and exit")
    parser.add_argument("--deltas", nargs="*", metavar="DELTA",
                        help="with --delta-lists/--labels: only these deltas' rows (and the anchors); default all")
    args = parser.parse_args(argv)
    if args.delta_lists or args.labels:
        try:
            print(delta_lists(args.deltas or None) if args.delta_lists else "\n".join(labels(args.deltas or None)))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if args.sweep_dir is None:
        parser.error("give a sweep folder, --delta-lists or --labels")
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a sweep folder (expected experiments/runs/ablate-<profile>-<data>)",
              file=sys.stderr)
        return 2
    collected = collect(args.sweep_dir)
    if not collected:
        print(f"error: no runs under {args.sweep_dir}", file=sys.stderr)
        return 2
    table, run_rows = write(collected, args.out or args.sweep_dir, args.sweep_dir.name)
    print((args.out or args.sweep_dir) / "ablation.md")
    print(ABLATION.markdown(table))
    # runs of the plan not started are 'missing' in the table (a partial matrix, e.g. make ablate ABLATE_DELTAS=...);
    # only failed or unfinished ones make the exit status non-zero, as for modernize.tabulate
    return report_incomplete(run_rows, "run")

