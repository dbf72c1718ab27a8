"""Every figure of the results, drawn with matplotlib from rows the results code computed: the roadmap's (Figure 2's
style), the ablation matrix's, and the learning curves. A figure file is written atomically (modernize.io)."""

from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path

from ..design.roadmap import paper
from ..io import atomic_write
from .stats import SIGNIFICANCE_LEVEL


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    pyplot().close(fig)


def number(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def roadmap_figure(table: list[dict], path: Path, title: str, subtitle: str = "", swin_t: dict | None = None) -> None:
    """Figure-2 style: one bar per step, our top-1 beside the paper's, GFLOPs written on the bars; Swin-T's line as
    Figure 2 draws it (the paper's 81.3; ours where make peers trained Swin-T with the roadmap's settings)."""
    plt = pyplot()
    names = [r["label"] for r in table]
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
            f"{r['top1_mean']:.1f}  ({number(r['gflops_224'], '.1f')} GFLOPs)"
        ax_ours.text(ax_ours.get_xlim()[0] + 0.2, y, text, va="center", fontsize=8, color="white"
                     if r["top1_mean"] else "black")
    if swin_t is not None and swin_t.get("top1_mean") is not None:
        ax_ours.axvline(swin_t["top1_mean"], color="tab:red", linestyle="--", linewidth=1)
        ax_ours.text(swin_t["top1_mean"], ys[0] + 0.6, f" Swin-T {swin_t['top1_mean']:.1f}", color="tab:red",
                     fontsize=8)
    ax_ours.set_title("ours (this proxy)")
    ax_ours.set_xlabel("top-1 (%)")
    paper_vals = [r["paper_top1"] or 0.0 for r in table]
    ax_paper.barh(ys, paper_vals, color="tab:orange")
    ax_paper.set_xlim(74, 83)
    for y, r in zip(ys, table):
        if r["paper_top1"] is not None:
            ax_paper.text(74.1, y, f"{r['paper_top1']:.1f}  ({number(r['paper_gflops'], '.1f')} GFLOPs)", va="center",
                          fontsize=8, color="white")
    swin_t_paper = paper()["peers"]["swin_t"]["top1_in1k"]  # Figure 2's line
    ax_paper.axvline(swin_t_paper, color="tab:red", linestyle="--", linewidth=1)
    ax_paper.text(swin_t_paper, ys[0] + 0.6, f" Swin-T {swin_t_paper}", color="tab:red", fontsize=8)
    ax_paper.set_title("paper (ImageNet-1K, Figure 2)")
    ax_paper.set_xlabel("top-1 (%)")
    ax_ours.set_yticks(ys, names)
    fig.suptitle(f"{title}\n{textwrap.fill(subtitle, 150)}" if subtitle else title, fontsize=10 if subtitle else None)
    fig.tight_layout()
    save_figure(fig, path)


def ablation_figure(table: list[dict], path: Path, title: str) -> None:
    """Three columns sharing the deltas: the effect added alone, the effect removed from ConvNeXt-T (dots with
    their 95% intervals; filled where significant), and the paper's step change (bars)."""
    plt = pyplot()
    names = [r["delta"] for r in table]
    ys = list(range(len(names)))[::-1]
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.42 * len(names) + 2.0), sharey=True)
    panels = (("add", "added alone to ResNet-50\n(modern recipe)", "tab:blue"),
              ("remove", "removed alone from ConvNeXt-T", "tab:green"))
    for ax, (kind, heading, color) in zip(axes, panels):
        for y, r in zip(ys, table):
            value = r.get(f"{kind}_effect")
            if value is None:
                ax.text(0, y, r.get(f"{kind}_status", ""), va="center", ha="center", fontsize=7, color="gray")
                continue
            low, high = r.get(f"{kind}_low"), r.get(f"{kind}_high")
            if low is not None:
                ax.errorbar(value, y, xerr=[[value - low], [high - value]], fmt="none", ecolor=color, capsize=3)
            ax.plot(value, y, "o", color=color, markerfacecolor=color if r.get(f"{kind}_significant") else "white")
            extra = r.get(f"{kind}_extra")
            if extra:
                ax.annotate(("with " if kind == "add" else "also removes ") + extra.replace(" ", ", "), (value, y),
                            xytext=(0, -9), textcoords="offset points", ha="center", fontsize=6, color="gray")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(heading, fontsize=10)
        ax.set_xlabel("top-1 change (points), with - without")
    paper = [r["paper_change"] or 0.0 for r in table]
    axes[2].barh(ys, paper, color=["tab:orange" if v >= 0 else "tab:red" for v in paper])
    axes[2].axvline(0, color="black", linewidth=0.8)
    axes[2].set_title("paper: change at its roadmap step\n(ImageNet-1K, Figure 2)", fontsize=10)
    axes[2].set_xlabel("top-1 change (points)")
    axes[0].set_yticks(ys, names)
    fig.suptitle(f"{title}\nfilled dot: significant (paired t-test, p < {SIGNIFICANCE_LEVEL}); bars: 95% interval "
                 f"over seeds", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def learning_curves_png(points: list[dict], title: str) -> bytes:
    """learning_curves_figure as PNG bytes (the report embeds them)."""
    plt = pyplot()
    fig = learning_curves_figure(points, title)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png")
    plt.close(fig)
    return buf.getvalue()


def learning_curves_figure(points: list[dict], title: str):
    """A grid of per-label panels from pooled curve points (modernize.results.pooled.pooled_curves): validation top-1
    (mean ± std over seeds) and training loss (gray, dashed) against the epoch. The constrained layout keeps the
    figure's title clear of the panels' titles, and long labels (the ablation's run up to 76 characters) are
    wrapped at their + and - so that neighbouring panel titles do not run into each other."""
    plt = pyplot()
    labels = list(dict.fromkeys(p["label"] for p in points))
    ncols = min(4, len(labels))
    nrows = -(-len(labels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.7 * nrows + 0.8), squeeze=False,
                             layout="constrained")
    for ax, label in zip(axes.flat, labels):
        curve_panel(ax, [p for p in points if p["label"] == label], label)
    for ax in list(axes.flat)[len(labels):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: validation top-1 (blue, mean ± std over seeds) and training loss (gray, dashed)",
                 fontsize=10)
    return fig


def wrapped_label(label: str, width: int = 34) -> str:
    """A run label over several lines, broken before a + or - (gelu+layer_norm+...), each line at most about
    `width` characters."""
    parts = re.split(r"(?=[+-])", label)
    lines = [""]
    for part in parts:
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)


def curve_panel(ax, mine: list[dict], label: str) -> None:
    """One label's panel: val top-1 mean ± std (blue) and, on a second axis, the training loss (gray)."""
    epochs = [p["epoch"] for p in mine]
    mean = [p["val_top1_mean"] for p in mine]
    std = [p["val_top1_std"] for p in mine]
    ax.plot(epochs, mean, "o-", color="tab:blue", markersize=3, label="val top-1")
    ax.fill_between(epochs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                    color="tab:blue", alpha=0.25)
    ax.set_title(f"{wrapped_label(label)} (n={max(p['seeds'] for p in mine)})", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_ylabel("val top-1 (%)", fontsize=7, color="tab:blue")
    loss_ax = ax.twinx()
    loss_mean = [p["train_loss_mean"] for p in mine]
    loss_std = [p["train_loss_std"] for p in mine]
    loss_ax.plot(epochs, loss_mean, "--", color="tab:gray", linewidth=1)
    loss_ax.fill_between(epochs, [m - s for m, s in zip(loss_mean, loss_std)],
                         [m + s for m, s in zip(loss_mean, loss_std)], color="tab:gray", alpha=0.15)
    loss_ax.tick_params(labelsize=7, colors="tab:gray")
    ax.set_xlabel("epoch", fontsize=7)


def peers_figure(rows: list[dict], path: Path, title: str) -> None:
    """The paper's comparisons: per pair, ConvNeXt's top-1 beside its peer's (mean ± std over seeds, ours), and the
    two published top-1s beside them."""
    plt = pyplot()
    fig, (ax_ours, ax_paper) = plt.subplots(1, 2, figsize=(11, 0.9 * len(rows) + 1.8), sharey=True)
    ys = list(range(len(rows)))[::-1]
    for ax, published in ((ax_ours, False), (ax_paper, True)):
        for offset, side, color in ((0.18, "convnext", "tab:blue"), (-0.18, "peer", "tab:orange")):
            values = [(r[f"paper_{side}_top1"] if published else r[f"{side}_top1_mean"]) or 0.0 for r in rows]
            errors = None if published else [r[f"{side}_top1_std"] or 0.0 for r in rows]
            ax.barh([y + offset for y in ys], values, height=0.34, xerr=errors, color=color,
                    label="ConvNeXt" if side == "convnext" else "peer")
            for y, value in zip(ys, values):
                if value:
                    ax.text(value, y + offset, f" {value:.1f}", va="center", fontsize=8)
        shown = [v for r in rows for v in ((r["paper_convnext_top1"], r["paper_peer_top1"]) if published else
                                           (r["convnext_top1_mean"], r["peer_top1_mean"])) if v]
        if shown:
            ax.set_xlim(min(shown) - 3, max(shown) + 2)
        ax.set_xlabel("top-1 (paper, ImageNet-1K)" if published else "top-1 (ours, mean ± std over seeds)")
    ax_ours.set_yticks(ys, [f"{r['convnext']}\nvs {r['peer']}" for r in rows])
    ax_ours.legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
