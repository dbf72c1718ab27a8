"""The roadmap table (and the kernel sweep's, whose rows are (step, kernel size)): each label's seeds pooled into a
row, in the roadmap's order, each row's top-1 change against the row before it beside the paper's, with its test.

Labels made of deltas ('separate_downsampling+silu', modernize.design.roadmap.run_label) follow the roadmap, each
compared with the roadmap row it extends.
"""

from __future__ import annotations

from typing import Any

from ..design.roadmap import STEPS, base_step, paper_kernel, paper_reference
from . import fidelity
from .columns import EMA_NOTE, EMA_TOP1, Column, Page, Table, has_ema, pooled_top1_columns, significance_cell
from .pooled import pool_seeds
from .stats import MIN_SEEDS, SIGNIFICANCE_LEVEL, agrees, change_between, paper_change

# summary fields a row gives as the mean over its finished seeds
MEAN_FIELDS = ("params", "gflops_224", "params_run", "gflops_run", "train_images_per_s", "infer_images_per_s",
               "wall_time_s")


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


def roadmap_rows(runs: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """One row per label of a sweep's results (modernize.training.runs.collect), in the roadmap's order."""
    table: list[dict[str, Any]] = []
    previous: dict[str, Any] | None = None
    finished: dict[str, dict[str, Any]] = {}  # rows with a top-1, by name
    for name in sorted(runs, key=order_key):
        ok = [r for r in runs[name] if r["status"] == "ok"]
        step, _, kernel = name.partition(" k=")
        ref = (paper_kernel(int(kernel)) if kernel.isdigit() else paper_reference(step)) or {}
        row = {"label": name, **pool_seeds(runs[name], MEAN_FIELDS), "paper_top1": ref.get("top1"),
               "paper_gflops": ref.get("gflops")}
        if ok:
            row["scaled"] = ok[0].get("scaled")
            row["recipe"] = ok[0].get("recipe")
        row.update(change_against(row, compared_with(name, previous, finished)))
        table.append(row)
        if row["top1_mean"] is not None:
            previous = finished[name] = row
    return table


def change_against(row: dict, reference: dict | None) -> dict[str, Any]:
    """A row's top-1 change against its reference row (stats.change_between), the paper's change, and whether the
    two agree in direction ('flat in paper' where the paper's is 0)."""
    out: dict[str, Any] = {"change": None, "paper_change": None, "agrees": None, "p_value": None,
                           "significant": None}
    if reference is None or row["top1_mean"] is None or reference["top1_mean"] is None:
        return out
    change = change_between(row["top1_by_seed"], reference["top1_by_seed"])
    out.update(change=change.change, p_value=change.p, significant=change.significant,
               paper_change=paper_change(row["paper_top1"], reference["paper_top1"]))
    if out["paper_change"] is not None:
        direction = agrees(change.change, out["paper_change"])
        out["agrees"] = "flat in paper" if direction is None else "yes" if direction else "no"
    return out


def _gflops_run_cell(r: dict) -> str:
    return "" if r["gflops_run"] is None else f"{r['gflops_run'] * 1e3:.1f}M"


# roadmap.csv has every column with a name, roadmap.md every column with a header, in this order; the report page
# shows the columns with a page, in ROADMAP.page_order
ROADMAP = Table((
    # the CSV keeps its field names: "step" is the row's run label, "delta" and "paper_delta" its top-1 changes
    Column("step", "step", align="left", page=True, key="label"),
    *pooled_top1_columns("top-1 (ours)"),
    EMA_TOP1,
    Column("delta", "change", "+.2f", page=True, key="change"),
    Column("paper_top1", "paper top-1", ".1f", page=True),
    Column("paper_delta", "paper change", "+.1f", page=True,
           key="paper_change"),
    Column("agrees", "same direction", align="left", page=True),
    Column("p_value", fmt=".3f", page="p"),
    Column("significant", "significant (p)", significance_cell("p_value", "significant", "change"), align="left",
           page=Page("significant", ("significant",))),
    Column("params", "params", ",.0f", page=True),
    Column("gflops_224", "GFLOPs 224", ".2f", page=True),
    Column("paper_gflops", "paper GFLOPs", ".1f", page=True),
    Column("params_run"),
    Column("gflops_run", "GFLOPs run", _gflops_run_cell),
    Column("train_images_per_s", "train img/s", ".0f"),
    Column("infer_images_per_s", "infer img/s", ".0f"),
    Column("wall_time_s", "wall s", ".0f"),
    Column("error", page=True),
), key="step", page_order=("step", "n", "top1_mean", "delta", "paper_top1", "paper_delta", "agrees", "significant",
                           "p_value", "params", "gflops_224", "paper_gflops", "failed", "unfinished", "error"))


def explanation(table: list[dict]) -> str:
    """The paragraph under a roadmap (or kernel) table's title: what its columns mean."""
    return (f"Our top-1 is the final-epoch validation accuracy (mean ± std over seeds); 'change' is the difference to "
            f"the previous row (after the roadmap: to the roadmap row the label extends) on the seeds both have; "
            f"'significant' is a two-sided t-test against that row at p < {SIGNIFICANCE_LEVEL}, paired by seed "
            f"(needs {MIN_SEEDS}+ seeds with some variance). Params and GFLOPs 224 are the paper-scale model's; "
            f"GFLOPs run is the trained model at the profile's resolution.{' ' + EMA_NOTE if has_ema(table) else ''}")


def lead_block(lead: str) -> str:
    """The summary line as it stands at the top of the table (and of the README's block)."""
    return f"**{lead}** (modernize.results.fidelity)"


def roadmap_markdown(title: str, table: list[dict], lead: str) -> str:
    """roadmap.md: the title, the summary line (fidelity or kernel trend), what the columns mean, what the profile
    scaled, the table."""
    paragraphs = [f"# {title}", lead_block(lead), explanation(table), profile_line(table)]
    return "\n\n".join(p for p in paragraphs if p) + "\n\n" + ROADMAP.markdown(table)


# What the profile sets for every run, and what its rules make of each recipe (modernize.training.proxy.describe).
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


# fidelity.csv and the W&B "fidelity" table: one row, the score flattened by fidelity_record
FIDELITY_FIELDS = (
    "seeds", "decisive", "decisive_agree", "decisive_significant", "ties", "ties_within_noise", "ties_tested",
    "pearson_r", "pearson_low", "pearson_high", "convnext_minus_resnet50", "convnext_minus_resnet50_low",
    "convnext_minus_resnet50_high", "convnext_minus_recipe", "convnext_minus_recipe_low",
    "convnext_minus_recipe_high", "line")


def fidelity_record(score: dict) -> dict:
    """The fidelity score flattened to one CSV row / W&B summary."""
    record = {k: score[k] for k in ("seeds", "decisive_agree", "decisive_significant", "ties_within_noise",
                                    "ties_tested", "pearson_r", "pearson_low", "pearson_high")}
    record.update(decisive=len(score["decisive"]), ties=len(score["ties"]), line=fidelity.line(score))
    for e in score["end_to_end"]:
        key = f"convnext_minus_{e['base']}"
        record.update({key: e["mean"], f"{key}_low": e["low"], f"{key}_high": e["high"]})
    return record


# trend.csv: the kernel sweep's contrasts flattened to one row (k7_minus_k3, its interval and p, the paper's ...)
TREND_FIELDS = ("seeds", *(f"k{big}_minus_k{small}{suffix}" for big, small in fidelity.KERNEL_CONTRASTS
                           for suffix in ("", "_low", "_high", "_p", "_paper")), "line")


def trend_record(trend: dict) -> dict:
    record = {"seeds": trend["seeds"], "line": fidelity.kernel_line(trend)}
    for c in trend["contrasts"]:
        key = f"k{c['big']}_minus_k{c['small']}"
        record.update({key: c["mean"], f"{key}_low": c["low"], f"{key}_high": c["high"], f"{key}_p": c["p"],
                       f"{key}_paper": c["paper"]})
    return record
