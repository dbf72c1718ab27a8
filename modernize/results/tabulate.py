"""Tabulate a finished (or partly finished) sweep next to the paper: roadmap.md, roadmap.csv, roadmap.png.

    python -m modernize.tabulate experiments/runs/<sweep> --out experiments/roadmap/<profile>-<data>

A run directory holds summary.json when it finished, failed.json when it failed, and only last.pt while it is
unfinished. Rows follow the roadmap's order; seeds of a step are pooled into mean +- std. Runs made of deltas
(labelled like 'separate_downsampling+silu', modernize.roadmap.run_label) follow the roadmap, each compared with the
roadmap row it extends.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import textwrap
from pathlib import Path
from typing import Any

from . import columns, fidelity
from .columns import Column, csv_names
from ..io import atomic_write, atomic_write_text, read_json
from ..design.roadmap import STEPS, base_step, paper_kernel, paper_step

SIGNIFICANCE_LEVEL = 0.05


def collect(sweep_dir: Path, by_kernel: bool = False) -> dict[str, list[dict]]:
    """{row label: [summary or failure per seed]} from every run directory under sweep_dir. A run whose files are
    corrupt or belong to another run is a failed row saying why; nothing in a run directory stops the table."""
    rows: dict[str, list[dict]] = {}
    for run in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        result = read_run(run)
        if result is None:
            continue
        result["run_dir"] = run.name
        rows.setdefault(label(result, by_kernel), []).append(result)
    return rows


RESULT_FILES = (("summary.json", "ok"), ("failed.json", "failed"))
RUN_DIR_NAME = re.compile(r"(?:k(?P<kernel>\d+)|(?P<step>.+))-seed(?P<seed>-?\d+)")


def read_run(run: Path) -> dict | None:
    """One run directory's result, placed by the run's own config.yaml (else its folder's name), never by the
    fields of the result file alone: a summary copied into another run's folder is reported, not moved."""
    identity, config_hash = run_identity(run)
    for name, status in RESULT_FILES:
        path = run / name
        if not (path.exists() or path.is_symlink()):
            continue
        try:
            result = read_json(path)
        except (OSError, ValueError) as e:  # invalid JSON, a directory, unreadable
            return failure(identity, run, f"{name} is unreadable ({type(e).__name__}: {e})")
        if not isinstance(result, dict):
            return failure(identity, run, f"{name} holds a JSON {type(result).__name__}, not a run's result")
        if status == "ok" and not isinstance(result.get("final_top1"), (int, float)):
            return failure(identity, run, f"{name} has no final_top1: not a modernize summary")
        mismatch = mismatched(result, identity, config_hash)
        if mismatch:
            return failure(identity, run, f"{name} {mismatch}")
        return result | identity | {"status": status}
    if (run / "last.pt").exists() or (run / "config.yaml").exists():
        return {"step": run.name.rsplit("-seed", 1)[0]} | identity | {"status": "unfinished"}
    return None


def run_identity(run: Path) -> tuple[dict[str, Any], str | None]:
    """(step, seed, kernel_size) of the run that owns the folder and its config hash, from config.yaml; from the
    folder's name (<label>-seed<N>, k<kernel>-seed<N>) where there is none. Only what is known is returned."""
    path = run / "config.yaml"
    if path.exists():
        try:
            from omegaconf import OmegaConf

            from ..design.config import step_label
            from ..training.proxy import config_hash

            cfg = OmegaConf.load(path)
            return ({"step": step_label(cfg), "seed": cfg.seed, "kernel_size": cfg.model.block.kernel_size},
                    config_hash(cfg))
        except Exception:  # noqa: BLE001 -- a corrupt config.yaml: fall back to the folder's name
            pass
    match = RUN_DIR_NAME.fullmatch(run.name)
    if match is None:
        return {}, None
    identity: dict[str, Any] = {"seed": int(match["seed"])}
    if match["kernel"]:
        identity["kernel_size"] = int(match["kernel"])
    else:
        identity["step"] = match["step"]
    return identity, None


def mismatched(result: dict, identity: dict, config_hash: str | None) -> str:
    """Why a result file is not this folder's run's ('' when it is)."""
    for key, value in identity.items():
        if key in result and result[key] != value:
            return (f"is of {key} {result[key]!r}, but this run directory is {key} {value!r} (copied from another "
                    f"run?); delete it and re-run")
    if config_hash and result.get("config_hash") not in (None, config_hash):
        return (f"is of another config (hash {result['config_hash']}; config.yaml: {config_hash}); delete it and "
                f"re-run")
    return ""


def failure(identity: dict, run: Path, reason: str) -> dict:
    return {"step": run.name.rsplit("-seed", 1)[0]} | identity | {
        "status": "failed", "error": f"{reason} ({run.name})"}


def label(result: dict, by_kernel: bool) -> str:
    """A row per step, or per (step, kernel size) for the kernel sweep (Figure 2's 3/5/7/9/11)."""
    step = result.get("step", "?")
    return f"{step} k={result.get('kernel_size', '?')}" if by_kernel else step


def welch_p_value(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch t-test (unequal variances); None with fewer than two seeds on either side."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy import stats

    if statistics.pstdev(a) == 0 and statistics.pstdev(b) == 0:
        return 0.0 if statistics.mean(a) != statistics.mean(b) else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def order_key(name: str) -> tuple:
    """The roadmap's rows in its order, then the other labels grouped by the roadmap step they extend."""
    step, _, kernel = name.partition(" k=")
    base = base_step(step)
    extends = STEPS.index(base) if base else len(STEPS)
    return (STEPS.index(step) if step in STEPS else len(STEPS), extends, int(kernel) if kernel.isdigit() else 0, name)


def compared_with(name: str, previous: dict[str, Any] | None, rows: dict[str, dict[str, Any]]) -> dict | None:
    """The row a row's change is measured against: the previous roadmap row, or for a label that extends a roadmap
    step ('gelu+layer_norm') that step's row."""
    step = name.partition(" k=")[0]
    if step in STEPS:
        return previous
    base = base_step(step)
    return rows.get(base) if base else None


def summarize(runs: dict[str, list[dict]]) -> list[dict[str, Any]]:
    table: list[dict[str, Any]] = []
    previous: dict[str, Any] | None = None
    finished: dict[str, dict[str, Any]] = {}  # rows with a top-1, by name
    for name in sorted(runs, key=order_key):
        reference = compared_with(name, previous, finished)
        results = runs[name]
        ok = [r for r in results if r["status"] == "ok"]
        failed = [r for r in results if r["status"] == "failed"]
        unfinished = [r for r in results if r["status"] == "unfinished"]
        step, _, kernel = name.partition(" k=")
        ref = (paper_kernel(int(kernel)) if kernel.isdigit() else paper_step(step)) or {}
        top1 = [r["final_top1"] for r in ok]
        top1_by_seed = {r.get("seed", i): r["final_top1"] for i, r in enumerate(ok)}
        row: dict[str, Any] = {
            "step": name, "n": len(ok), "failed": len(failed), "unfinished": len(unfinished),
            "top1_mean": statistics.mean(top1) if top1 else None,
            "top1_std": statistics.stdev(top1) if len(top1) > 1 else (0.0 if top1 else None),
            "top1_seeds": top1, "top1_by_seed": top1_by_seed, "ema_top1_mean": columns.ema_top1_mean(ok),
            "paper_top1": ref.get("top1"), "paper_gflops": ref.get("gflops"),
            "error": failed[0].get("error", "") if failed else "",
        }
        for key in ("params", "gflops_224", "params_run", "gflops_run", "train_images_per_s", "infer_images_per_s",
                    "wall_time_s"):
            values = [r[key] for r in ok if r.get(key) is not None]
            row[key] = statistics.mean(values) if values else None
        if ok:
            row["scaled"] = ok[0].get("scaled")
            row["recipe"] = ok[0].get("recipe")
        # change from the previous row (or the roadmap row it extends), ours and the paper's, and whether they agree
        row.update(delta=None, paper_delta=None, agrees=None, p_value=None, significant=None)
        if reference is not None and row["top1_mean"] is not None and reference["top1_mean"] is not None:
            # on the seeds both rows have (the same pairing as the p-value), else the difference of the means
            common = fidelity.paired(top1_by_seed, reference["top1_by_seed"])
            row["delta"] = statistics.mean(common) if common else row["top1_mean"] - reference["top1_mean"]
            if row["paper_top1"] is not None and reference["paper_top1"] is not None:
                row["paper_delta"] = round(row["paper_top1"] - reference["paper_top1"], 2)
                if row["paper_delta"] == 0:
                    row["agrees"] = "flat in paper"
                else:
                    row["agrees"] = "yes" if math.copysign(1, row["delta"]) == math.copysign(1, row["paper_delta"]) \
                        else "no"
            # paired by seed where both rows share 2+ seeds (a step and its predecessor start from the same
            # seed, so pairing removes the seed's share of the noise); Welch's test otherwise
            row["p_value"] = fidelity.paired_p_value(top1_by_seed, reference["top1_by_seed"])
            if row["p_value"] is None:
                row["p_value"] = welch_p_value(top1, reference["top1_seeds"])
            row["significant"] = None if row["p_value"] is None else row["p_value"] < SIGNIFICANCE_LEVEL
        table.append(row)
        if row["top1_mean"] is not None:
            previous = finished[name] = row
    return table


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None:
        return ""
    return format(value, spec)


def _significant_cell(r: dict) -> str:
    if r["p_value"] is None:
        return "" if r["delta"] is None else "n/a (1 seed)"
    return f"{'yes' if r['significant'] else 'no'} ({r['p_value']:.3f})"


# The roadmap table (and the kernel table, whose rows are (step, kernel size)): roadmap.csv has every column with a
# name, roadmap.md every column with a header, in this order.
COLUMNS = (
    Column("step", "step", align="left"),
    *columns.pooled_top1_columns("top-1 (ours)"),
    columns.EMA_TOP1,
    Column("delta", "change", "+.2f"),
    Column("paper_top1", "paper top-1", ".1f"),
    Column("paper_delta", "paper change", "+.1f"),
    Column("agrees", "same direction", align="left"),
    Column("p_value"),
    Column("significant", "significant (p)", _significant_cell, align="left"),
    Column("params", "params", ",.0f"),
    Column("gflops_224", "GFLOPs 224", ".2f"),
    Column("paper_gflops", "paper GFLOPs", ".1f"),
    Column("params_run"),
    Column("gflops_run", "GFLOPs run", lambda r: "" if r["gflops_run"] is None else f"{r['gflops_run'] * 1e3:.1f}M"),
    Column("train_images_per_s", "train img/s", ".0f"),
    Column("infer_images_per_s", "infer img/s", ".0f"),
    Column("wall_time_s", "wall s", ".0f"),
    Column("error"),
)
CSV_COLUMNS = tuple(csv_names(COLUMNS))


def to_markdown(table: list[dict]) -> str:
    return columns.to_markdown(COLUMNS, table)


def to_csv(table: list[dict]) -> str:
    return columns.to_csv(COLUMNS, table)


def plot(table: list[dict], path: Path, title: str, subtitle: str = "") -> None:
    """Figure-2 style: one bar per step, our top-1 beside the paper's, GFLOPs written on the bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["step"] for r in table]
    ys = list(range(len(names)))[::-1]
    fig, (ax_ours, ax_paper) = plt.subplots(1, 2, figsize=(12, 0.45 * len(names) + 1.8), sharey=True)
    ours = [r["top1_mean"] or 0.0 for r in table]
    err = [r["top1_std"] or 0.0 for r in table]
    colors = ["tab:gray" if r["top1_mean"] is None else "tab:blue" for r in table]
    ax_ours.barh(ys, ours, xerr=err, color=colors, capsize=3)
    done = [v for v in ours if v]
    if done:
        ax_ours.set_xlim(max(0.0, min(done) - 5), min(100.0, max(done) + 3))
    for y, r in zip(ys, table):
        text = ("failed" if r["failed"] else "unfinished") if r["top1_mean"] is None else \
            f"{r['top1_mean']:.1f}  ({_fmt(r['gflops_224'], '.1f')} GFLOPs)"
        ax_ours.text(ax_ours.get_xlim()[0] + 0.2, y, text, va="center", fontsize=8, color="white"
                     if r["top1_mean"] else "black")
    ax_ours.set_title("ours (this proxy)")
    ax_ours.set_xlabel("top-1 (%)")
    paper_vals = [r["paper_top1"] or 0.0 for r in table]
    ax_paper.barh(ys, paper_vals, color="tab:orange")
    ax_paper.set_xlim(74, 83)
    for y, r in zip(ys, table):
        if r["paper_top1"] is not None:
            ax_paper.text(74.1, y, f"{r['paper_top1']:.1f}  ({_fmt(r['paper_gflops'], '.1f')} GFLOPs)", va="center",
                          fontsize=8, color="white")
    ax_paper.set_title("paper (ImageNet-1K, Figure 2)")
    ax_paper.set_xlabel("top-1 (%)")
    ax_ours.set_yticks(ys, names)
    fig.suptitle(f"{title}\n{textwrap.fill(subtitle, 150)}" if subtitle else title, fontsize=10 if subtitle else None)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


# fidelity.csv and the W&B "fidelity" table: one row, the score flattened by fidelity_record
FIDELITY = tuple(Column(name) for name in (
    "seeds", "decisive", "decisive_agree", "decisive_significant", "ties", "ties_within_noise", "ties_tested",
    "pearson_r", "pearson_low", "pearson_high", "convnext_minus_resnet50", "convnext_minus_resnet50_low",
    "convnext_minus_resnet50_high", "convnext_minus_recipe", "convnext_minus_recipe_low",
    "convnext_minus_recipe_high", "line"))
FIDELITY_COLUMNS = tuple(csv_names(FIDELITY))


def fidelity_record(score: dict) -> dict:
    """The fidelity score flattened to one CSV row / W&B summary."""
    record = {k: score[k] for k in ("seeds", "decisive_agree", "decisive_significant", "ties_within_noise",
                                    "ties_tested", "pearson_r", "pearson_low", "pearson_high")}
    record.update(decisive=len(score["decisive"]), ties=len(score["ties"]), line=fidelity.line(score))
    for e in score["end_to_end"]:
        key = f"convnext_minus_{e['base']}"
        record.update({key: e["mean"], f"{key}_low": e["low"], f"{key}_high": e["high"]})
    return record


def fidelity_csv(score: dict) -> str:
    return columns.to_csv(FIDELITY, [fidelity_record(score)])


# trend.csv: the kernel sweep's contrasts flattened to one row (k7_minus_k3, its interval and p, the paper's ...)
def trend_record(trend: dict) -> dict:
    record = {"seeds": trend["seeds"], "line": fidelity.kernel_line(trend)}
    for c in trend["contrasts"]:
        key = f"k{c['big']}_minus_k{c['small']}"
        record.update({key: c["mean"], f"{key}_low": c["low"], f"{key}_high": c["high"], f"{key}_p": c["p"],
                       f"{key}_paper": c["paper"]})
    return record


def trend_csv(trend: dict) -> str:
    names = ["seeds", *(f"k{big}_minus_k{small}{suffix}" for big, small in fidelity.KERNEL_CONTRASTS
                        for suffix in ("", "_low", "_high", "_p", "_paper")), "line"]
    return columns.to_csv([Column(name) for name in names], [trend_record(trend)])


def log_to_wandb(table: list[dict], sweep_dir: Path, mode: str, score: dict | None = None, out: Path | None = None,
                 project: str | None = None, entity: str | None = None) -> None:
    """The sweep's table run (job type "table", in the sweep's W&B group): the roadmap and fidelity tables, the
    figure, and the files in `out` as a "results" artifact. Its id is the sweep's (wandb_names.table_run_id), so
    tabulating again updates that run rather than adding one. Project and entity: the runs' config, unless given."""
    from ..training import wandb_names as names
    from ..training.tracking import Tracker

    sweep = sweep_dir.name
    config_project, config_entity = names.sweep_project(sweep_dir)
    tracker = Tracker(mode=mode, project=project or config_project, entity=entity or config_entity, group=sweep,
                      name=f"{sweep}-table", tags=["table"], job_type=names.JOB_TABLE,
                      config={"sweep": sweep, "rows": len(table)}, run_dir=sweep_dir,
                      run_id=names.table_run_id(sweep))
    tracker.table("roadmap", list(CSV_COLUMNS), [[r.get(c) if not isinstance(r.get(c), bool) else str(r.get(c))
                                                  for c in CSV_COLUMNS] for r in table])
    if score is not None:
        record = fidelity_record(score)
        tracker.table("fidelity", list(FIDELITY_COLUMNS), [[record.get(c) for c in FIDELITY_COLUMNS]])
        tracker.summary({f"fidelity/{k}": v for k, v in record.items() if v is not None})
    if out is not None:
        if (out / "roadmap.png").is_file():
            tracker.image("figure", out / "roadmap.png")
        tracker.artifact(names.artifact_name(sweep, "results"), "results",
                         [out / name for name in TABLE_FILES], metadata={"sweep": sweep, "rows": len(table)})
    tracker.finish()


# What a tabulation writes (roadmap.md's name is kept for the kernel sweep too); the table run's results artifact.
TABLE_FILES = ("roadmap.md", "roadmap.csv", "roadmap.png", "fidelity.csv")


# What the profile sets for every run, and what its rules make of each recipe (modernize.proxy.describe).
PROFILE_KEYS = ("width_multiplier", "resolution", "train_subset", "val_subset", "lr_scaling", "stem_stride",
                "epoch_rule", "regularization_rule", "layer_scale_rule", "crop_rule")
RECIPE_KEYS = ("epochs", "mixup", "cutmix", "randaugment", "random_erasing", "random_resized_crop",
               "drop_path_rate")


def profile_line(table: list[dict]) -> str:
    """The header line that says what the profile changed: its settings, then each recipe as trained."""
    runs = [r for r in table if r.get("scaled")]
    if not runs:
        return ""
    first = runs[0]["scaled"]
    parts = [", ".join(f"{k}={first[k]}" for k in PROFILE_KEYS if k in first)]
    for recipe in dict.fromkeys(r.get("recipe") for r in runs):
        scaled = next(r["scaled"] for r in runs if r.get("recipe") == recipe)
        values = ", ".join(f"{k}={scaled[k]}" for k in RECIPE_KEYS if k in scaled)
        layer_scale = max((r["scaled"].get("layer_scale_init") or 0.0) for r in runs if r.get("recipe") == recipe)
        if layer_scale:
            values += f", layer_scale_init={layer_scale} (steps with layer scale)"
        parts.append(f"recipe {recipe} as trained: {values}")
    return "Scaled by the profile: " + "; ".join(parts) + "."


def copy_into_readme(readme: Path, source: Path, lines: list[str]) -> None:
    """Replace what sits between a README's markers for `source` with `lines`, so the README's measured table is
    the tabulated one, never typed by hand. Missing markers are an error, not a silent no-op."""
    start, end = f"<!-- roadmap-table: {source} -->", "<!-- /roadmap-table -->"
    text = readme.read_text()
    if start not in text or end not in text.split(start, 1)[1]:
        raise SystemExit(f"error: {readme} has no '{start}' ... '{end}' block to fill")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    atomic_write_text(readme, "\n".join([before + start, *lines, end]) + after)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, help="output folder (default: the sweep folder)")
    parser.add_argument("--by-kernel", action="store_true", help="one row per depthwise kernel size (make kernels)")
    parser.add_argument("--wandb", default="disabled", help="W&B mode for the table run: auto|online|offline|disabled")
    parser.add_argument("--project", help="W&B project of the table run (default: the runs' logger.wandb.project)")
    parser.add_argument("--entity", help="W&B entity of the table run (default: the runs' logger.wandb.entity)")
    parser.add_argument("--readme", type=Path, help="also copy the fidelity (or kernel trend) line and table into "
                        "this file, between its '<!-- roadmap-table: <out>/roadmap.md -->' and "
                        "'<!-- /roadmap-table -->' lines")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a sweep folder (expected experiments/runs/<sweep>)", file=sys.stderr)
        return 2
    runs = collect(args.sweep_dir, args.by_kernel)
    if not runs:
        print(f"error: no runs under {args.sweep_dir}", file=sys.stderr)
        return 2
    table = summarize(runs)
    out = args.out or args.sweep_dir
    scaled_line = profile_line(table)
    header = (f"# {args.sweep_dir.name}\n\nOur top-1 is the final-epoch validation accuracy (mean ± std over seeds); "
              f"'change' is the difference to the previous row (after the roadmap: to the roadmap row the label "
              f"extends) on the seeds both have; 'significant' is a two-sided t-test against that row at "
              f"p < {SIGNIFICANCE_LEVEL}, paired by seed (needs 2+ seeds). "
              f"Params and GFLOPs 224 are the paper-scale model's; GFLOPs run is the trained model at the profile's "
              f"resolution.{' ' + columns.EMA_NOTE if columns.has_ema(table) else ''}\n\n")
    if scaled_line:
        header += scaled_line + "\n\n"
    score = None if args.by_kernel else fidelity.score(table)
    # the summary line goes first, it is what a reader of the table wants to know: the fidelity line of a roadmap,
    # the kernel sweep's own question (does 7 beat 3, does it saturate past 7) for a kernel table
    if score is not None:
        lead = fidelity.line(score)
        atomic_write_text(out / "fidelity.csv", fidelity_csv(score))
    else:
        trend = fidelity.kernel_trend(table)
        lead = fidelity.kernel_line(trend)
        atomic_write_text(out / "trend.csv", trend_csv(trend))
    header = header.replace("\n\n", f"\n\n**{lead}** (modernize.fidelity)\n\n", 1)
    markdown = header + to_markdown(table)
    atomic_write_text(out / "roadmap.md", markdown)
    atomic_write_text(out / "roadmap.csv", to_csv(table))
    plot(table, out / "roadmap.png", args.sweep_dir.name, lead)
    if args.wandb != "disabled":
        log_to_wandb(table, args.sweep_dir, args.wandb, score, out, args.project, args.entity)
    if args.readme is not None:
        copy_into_readme(args.readme, out / "roadmap.md",
                         [f"**{lead}** (modernize.fidelity)", "", *to_markdown(table).splitlines()])
    print(markdown)
    bad = [r for r in table if r["failed"] or r["unfinished"]]
    for r in bad:
        print(f"{r['step']}: {r['failed']} failed, {r['unfinished']} unfinished {r['error']}", file=sys.stderr)
    return 1 if bad else 0

