"""How well a proxy's roadmap tells the paper's story: one score, computed on the per-step *changes*.

Accuracy levels along the roadmap correlate with the step index almost perfectly whatever the models do, so
levels say nothing; what the paper claims is each step's change. The score has four parts:

- decisive steps (the paper moves top-1 by >= 0.5 points): how many of our changes have the paper's sign, and
  how many of those are significant (paired t-test over seeds against the previous step, p < 0.05);
- tie steps (the paper moves by <= 0.1): how many of ours stay within noise (paired p >= 0.05);
- Pearson r between our mean changes and the paper's, with a bootstrap interval that resamples seeds (the same
  seeds for every step, so the pairing survives);
- end to end: ConvNeXt-T minus ResNet-50 with the original recipe and with the modern one, each with a 95%
  t-interval of the per-seed differences.

Input rows are `{"label": name, "top1_by_seed": {seed: top1}, "paper_top1": float}` in roadmap order.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from .stats import (BOOTSTRAP_SAMPLES, MIN_SEEDS, agrees, bootstrap_interval, change_between, common_seeds, paired,
                    paper_change, pearson)

DECISIVE = 0.5  # paper change (points) at or above which a step is decisive
TIE = 0.1       # paper change at or below which a step is a tie
END_TO_END = (("separate_downsampling", "resnet50"), ("separate_downsampling", "recipe"))
END_TO_END_LABELS = {"resnet50": "ResNet-50", "recipe": "ResNet-50 (modern recipe)",
                     "separate_downsampling": "ConvNeXt-T", "swin_t": "Swin-T"}


def step_changes(rows: list[dict], seeds: list | None = None) -> list[tuple[str, float, float]]:
    """(step, our mean change, paper change) for each step whose previous step has results on `seeds`."""
    out = []
    for prev, row in zip(rows, rows[1:]):
        a, b = row["top1_by_seed"], prev["top1_by_seed"]
        use = seeds if seeds is not None else sorted(set(a) & set(b), key=str)
        if not use or any(s not in a or s not in b for s in use) or None in (row["paper_top1"], prev["paper_top1"]):
            continue
        ours = statistics.mean(a[s] - b[s] for s in use)
        out.append((row["label"], ours, paper_change(row["paper_top1"], prev["paper_top1"])))
    return out


def score(rows: list[dict[str, Any]], *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
          beside: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """The fidelity score of a roadmap table (see the module docstring). `beside`: rows of the transformers trained
    with the roadmap's settings (make peers: Swin-T), each compared with ConvNeXt-T as the paper's Table 1 does."""
    rows = [r for r in rows if r["top1_by_seed"] and r.get("paper_top1") is not None]
    decisive, ties = [], []
    for prev, row in zip(rows, rows[1:]):
        paper = paper_change(row["paper_top1"], prev["paper_top1"])
        if not paired(row["top1_by_seed"], prev["top1_by_seed"]):  # the score pairs seeds, or says nothing
            continue
        change = change_between(row["top1_by_seed"], prev["top1_by_seed"])
        entry = {"step": row["label"], "ours": change.change, "paper": paper, "p": change.p}
        if abs(paper) >= DECISIVE:
            entry["agrees"] = bool(agrees(change.change, paper))
            entry["significant"] = entry["agrees"] and bool(change.significant)
            decisive.append(entry)
        elif abs(paper) <= TIE:
            entry["within_noise"] = None if change.significant is None else not change.significant
            ties.append(entry)

    # r on the seeds every row has, the same seeds its bootstrap resamples (per-step seeds where none is common)
    common = common_seeds(*(row["top1_by_seed"] for row in rows))
    changes = step_changes(rows, common or None)
    r = pearson([c[1] for c in changes], [c[2] for c in changes])
    r_low = r_high = None
    if r is not None and len(common) >= 2:
        def resampled_r(pick: list) -> float | None:
            c = step_changes([{**row, "top1_by_seed": {i: row["top1_by_seed"][s] for i, s in enumerate(pick)}}
                              for row in rows])
            return pearson([x[1] for x in c], [x[2] for x in c])

        r_low, r_high = bootstrap_interval(resampled_r, common, samples=samples, seed=seed)

    by_step = {row["label"]: row for row in rows}
    end_to_end = []
    by_step |= {row["label"]: row for row in beside}
    for top, base in (*END_TO_END, *(("separate_downsampling", row["label"]) for row in beside)):
        if top in by_step and base in by_step:
            if paired(by_step[top]["top1_by_seed"], by_step[base]["top1_by_seed"]):
                change = change_between(by_step[top]["top1_by_seed"], by_step[base]["top1_by_seed"])
                published = by_step[base].get("paper_convnext_t_minus")  # a peer: Table 1's ConvNeXt-T - peer
                end_to_end.append({"top": top, "base": base, "mean": change.change, "low": change.low,
                                   "high": change.high, "paper": published if published is not None else
                                   paper_change(by_step[top]["paper_top1"], by_step[base]["paper_top1"])})
    return {
        "decisive": decisive, "decisive_agree": sum(d["agrees"] for d in decisive),
        "decisive_significant": sum(d["significant"] for d in decisive),
        "ties": ties, "ties_within_noise": sum(bool(t["within_noise"]) for t in ties),
        "ties_tested": sum(t["within_noise"] is not None for t in ties),
        "pearson_r": r, "pearson_low": r_low, "pearson_high": r_high, "end_to_end": end_to_end,
        "seeds": len(common),
    }


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def line(result: dict[str, Any]) -> str:
    """The one-line summary printed at the top of roadmap.md."""
    parts = [f"decisive steps {result['decisive_agree']}/{len(result['decisive'])} agree in sign "
             f"({result['decisive_significant']} significant)"]
    if result["ties"] and not result["ties_tested"]:
        parts.append(f"ties need {MIN_SEEDS}+ seeds")
    elif result["ties"]:
        tested = f" of {result['ties_tested']} tested" if result["ties_tested"] < len(result["ties"]) else ""
        parts.append(f"ties {result['ties_within_noise']}/{len(result['ties'])} within noise{tested}")
    r = result["pearson_r"]
    if r is not None:
        ci = f" [{_num(result['pearson_low'], '.2f')}, {_num(result['pearson_high'], '.2f')}]" \
            if result["pearson_low"] is not None else ""
        parts.append(f"Pearson r of step changes {r:.2f}{ci}")
    for e in result["end_to_end"]:
        ci = f" [{_num(e['low'], '+.2f')}, {_num(e['high'], '+.2f')}]" if e["low"] is not None else ""
        parts.append(f"{END_TO_END_LABELS[e['top']]} − {END_TO_END_LABELS[e['base']]} {e['mean']:+.2f}{ci} "
                     f"(paper {e['paper']:+.1f})")
    return f"Fidelity ({result['seeds']} seed{'s' if result['seeds'] != 1 else ''}): " + "; ".join(parts) + "."


# ------------------------------------------------------------------------------------------- the kernel sweep
# Figure 2's kernel-size result (section 2.5): larger depthwise kernels gain up to 7x7 (79.9 -> 80.6), then
# saturate (9x9 and 11x11: 80.6). So the sweep's two questions: does 7 beat 3, and do 9 and 11 add to 7?
KERNEL_CONTRASTS = ((7, 3), (9, 7), (11, 7))


def kernel_trend(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each contrast of KERNEL_CONTRASTS on a kernel table (rows labelled '<step> k=<size>'): the mean per-seed
    difference with its 95% t-interval and paired p-value, beside the paper's."""
    by_kernel = {}
    for row in rows:
        kernel = row["label"].partition(" k=")[2]
        if kernel.isdigit() and row["top1_by_seed"]:
            by_kernel[int(kernel)] = row
    contrasts = []
    for big, small in KERNEL_CONTRASTS:
        if big not in by_kernel or small not in by_kernel:
            continue
        a, b = by_kernel[big], by_kernel[small]
        common = paired(a["top1_by_seed"], b["top1_by_seed"])
        if not common:
            continue
        change = change_between(a["top1_by_seed"], b["top1_by_seed"])
        contrasts.append({"big": big, "small": small, "mean": change.change, "low": change.low, "high": change.high,
                          "p": change.p, "paper": paper_change(a["paper_top1"], b["paper_top1"]),
                          "seeds": len(common)})
    return {"contrasts": contrasts, "seeds": min((c["seeds"] for c in contrasts), default=0)}


def kernel_line(trend: dict[str, Any]) -> str:
    """The one-line summary printed at the top of the kernel table."""
    parts = []
    for c in trend["contrasts"]:
        interval_text = f" [{_num(c['low'], '+.2f')}, {_num(c['high'], '+.2f')}]" if c["low"] is not None else ""
        p = f", p {c['p']:.3f}" if c["p"] is not None else ""
        paper = f" (paper {c['paper']:+.1f})" if c["paper"] is not None else ""
        parts.append(f"{c['big']}x{c['big']} − {c['small']}x{c['small']} {c['mean']:+.2f}{interval_text}{p}{paper}")
    return f"Kernel trend ({trend['seeds']} seeds): " + ("; ".join(parts) or "no pair of kernel sizes finished") + "."
