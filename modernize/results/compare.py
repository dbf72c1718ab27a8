"""python -m modernize.compare: one label's runs in two sweeps, paired by seed. Is a setting's change (B) different
from the runs it is compared with (A)? The runs of one seed start from the same seed and see the data in the same
order, so each seed's difference B - A removes the seed's share of the noise; the table gives them, their mean with
its 95% t-interval and a paired two-sided t-test (modernize.results.stats, the level every table uses).

    python -m modernize.compare experiments/runs/roadmap-cpu-fashion_mnist \\
        experiments/runs/init-kaiming_zero_last-cpu-fashion_mnist --label recipe \\
        --out experiments/init/cpu-fashion_mnist

writes compare.md and compare.csv (one row per seed, then the mean). The trained settings in which the two sweeps'
runs differ are read from their config.yaml (modernize.training.identity.setting_differences) and named above the table,
so the table says what was compared.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io import atomic_write_text
from .columns import Column, Table
from ..training.runs import collect
from .stats import MIN_SEEDS, SIGNIFICANCE_LEVEL, change_between

COMPARE = Table((
    Column("seed", "seed", align="left"),
    Column("top1_a", "A top-1", ".2f"),
    Column("top1_b", "B top-1", ".2f"),
    Column("change", "B - A", "+.2f"),
    Column("ci_low", "95% interval", lambda r: "" if r.get("ci_low") is None
           else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"),
    Column("ci_high"),
    Column("p", "paired p", lambda r: "" if r.get("p") is None else f"{r['p']:.3f}"),
    Column("significant", "significant", lambda r: ("not tested" if r["seed"] == "mean" else "")
           if r.get("significant") is None else ("yes" if r["significant"] else "no")),
), key="seed")


def finished_by_seed(runs: dict[str, list[dict]], label: str) -> dict:
    """{seed: run result} of the label's finished runs among a sweep's (modernize.training.runs.collect)."""
    return {r["seed"]: r for r in runs.get(label, []) if r.get("status") == "ok"}


def comparison_rows(a: dict, b: dict) -> list[dict]:
    """A row per seed both have, then the mean row with the interval and the paired test."""
    top1_a = {s: r["final_top1"] for s, r in a.items()}
    top1_b = {s: r["final_top1"] for s, r in b.items()}
    seeds = sorted(set(top1_a) & set(top1_b))
    rows = [{"seed": s, "top1_a": top1_a[s], "top1_b": top1_b[s], "change": top1_b[s] - top1_a[s]} for s in seeds]
    if not rows:
        return rows
    change = change_between({s: top1_b[s] for s in seeds}, {s: top1_a[s] for s in seeds})  # paired: common seeds
    rows.append({"seed": "mean", "top1_a": sum(top1_a[s] for s in seeds) / len(seeds),
                 "top1_b": sum(top1_b[s] for s in seeds) / len(seeds), "change": change.change, "ci_low": change.low,
                 "ci_high": change.high, "p": change.p, "significant": change.significant})
    return rows


def differences(a: dict, b: dict) -> str:
    """The trained settings in which the runs of the first common seed differ, A's value first."""
    from omegaconf import OmegaConf

    from ..training.identity import setting_differences

    seed = min(set(a) & set(b))
    configs = [OmegaConf.load(Path(sweep) / run[seed]["run_dir"] / "config.yaml") for sweep, run in
               ((a[seed]["sweep"], a), (b[seed]["sweep"], b))]
    return setting_differences(*configs, limit=8) or "none (the same trained settings)"


def markdown(label: str, a_dir: Path, b_dir: Path, rows: list[dict], differs: str) -> str:
    return (f"# {label}: B against A, paired by seed\n\n"
            f"- A: `{a_dir}`\n- B: `{b_dir}`\n- trained settings that differ (A vs B): {differs}\n\n"
            f"Final top-1 (%) of each seed's runs, B - A per seed, and their mean with its 95% t-interval and a "
            f"paired two-sided t-test at p < {SIGNIFICANCE_LEVEL}, reported from {MIN_SEEDS}+ seeds whose differences "
            f"vary (`python -m modernize.compare`).\n\n"
            + COMPARE.markdown(rows))


def compare_arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modernize.compare",
                                     description=" ".join(__doc__.split("\n\n")[0].split()))  # the first paragraph
    parser.add_argument("sweep_a", type=Path, help="the runs compared with (e.g. the committed roadmap)")
    parser.add_argument("sweep_b", type=Path, help="the runs of the change")
    parser.add_argument("--label", required=True, help="the run label in both sweeps (e.g. recipe)")
    parser.add_argument("--out", type=Path, help="folder for compare.md and compare.csv (default: print only)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = compare_arguments().parse_args(argv)
    for sweep in (args.sweep_a, args.sweep_b):
        if not sweep.is_dir():
            print(f"error: {sweep} is not a sweep folder (expected experiments/runs/<sweep>)", file=sys.stderr)
            return 2
    collected = {sweep: collect(sweep) for sweep in (args.sweep_a, args.sweep_b)}  # each sweep's folders read once
    missing = [sweep for sweep, runs in collected.items() if args.label not in runs]
    if missing:
        found = {sweep: ", ".join(sorted(collected[sweep])) or "none" for sweep in missing}
        print(f"error: --label {args.label} has no run in "
              + "; ".join(f"{sweep} (its labels: {labels})" for sweep, labels in found.items()), file=sys.stderr)
        return 2
    a, b = (finished_by_seed(collected[s], args.label) for s in (args.sweep_a, args.sweep_b))
    for runs, sweep in ((a, args.sweep_a), (b, args.sweep_b)):
        for run in runs.values():
            run["sweep"] = sweep
    if not set(a) & set(b):
        print(f"error: no seed has a finished {args.label} run in both {args.sweep_a} (seeds {sorted(a)}) and "
              f"{args.sweep_b} (seeds {sorted(b)})", file=sys.stderr)
        return 2
    rows = comparison_rows(a, b)
    text = markdown(args.label, args.sweep_a, args.sweep_b, rows, differences(a, b))
    print(text, end="")
    if args.out:
        atomic_write_text(args.out / "compare.md", text)
        atomic_write_text(args.out / "compare.csv", COMPARE.csv(rows))
    return 0
