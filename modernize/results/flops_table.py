"""`make flops`: params and fvcore GFLOPs at 224 px of every roadmap step, the kernel sweep, the ResNet-200 regime, the
ConvNeXt variants and the isotropic models, beside the paper's (experiments/flops/roadmap.{md,csv}).

    python -m modernize.flops_table [--out experiments/flops]

The counting itself is modernize.design.flops; this module is the table made from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .columns import Column, Table
from ..design.config import compose, model_spec
from ..design.flops import paper_scale_stats
from ..io import atomic_write_text
from ..design.roadmap import KERNEL_SIZES, ON_BASE, STEPS, paper, paper_kernel, paper_reference


def flops_rows() -> list[dict]:
    """Every roadmap step, the kernel sweep, the ResNet-200 -> ConvNeXt-B regime and the variants, each beside the
    paper's numbers for its label (modernize.design.roadmap.paper_reference)."""
    def row(group: str, name: str, overrides: list[str], ref: dict | None) -> dict:
        ref = ref or {}
        return {"group": group, "name": name, **paper_scale_stats(model_spec(compose(overrides))),
                "paper_gflops": ref.get("gflops"), "paper_top1": ref.get("top1"), "paper_params": ref.get("params")}

    rows = [row("roadmap", step, [f"+step={step}"], paper_reference(step)) for step in STEPS]
    rows += [row("kernel_size", f"kernel_size={k}", ["+step=kernel_size", f"model.block.kernel_size={k}"],
                 paper_kernel(k)) for k in KERNEL_SIZES]
    rows += [row("resnet200_regime", step, [f"+step={step}", "model=resnet200"],
                 paper_reference(f"{step}{ON_BASE}resnet200"))
             for step in ("resnet50", "stage_ratio", "resnextify", "inverted_bottleneck", "separate_downsampling")]
    rows += [row("variants", name, [f"model={name}"], paper_reference(name))
             for name in ("convnext_t", "convnext_s", "convnext_b", "convnext_l", "convnext_xl")]
    rows += [row("isotropic", name, [f"model={name}"], paper_reference(name)) for name in paper()["isotropic"]]
    rows += [row("peers", name, [f"model={name}"], paper_reference(name)) for name in paper()["peers"]]
    return rows


def _diff_cell(r: dict) -> str:
    return "" if r.get("paper_gflops") is None else f"{r['gflops_224'] - r['paper_gflops']:+.2f}"


# roadmap.csv has every column with a name, roadmap.md every column with a header, in this order
FLOPS = Table((
    Column("group", "group", align="left"),
    Column("name", "model", align="left"),
    Column("params", "params", ",.0f"),
    Column("gflops", "GFLOPs (ours)", ".2f", key="gflops_224"),  # the committed CSV's field name
    Column("paper_params", "paper params", ",.0f"),  # a count, however it was computed (22.0 x 10^6)
    Column("paper_gflops", "GFLOPs (paper)", ".1f"),
    Column(None, "diff", _diff_cell),
    Column("paper_top1", "paper top-1", ".1f"),
), key="name")


def page(rows: list[dict]) -> str:
    """roadmap.md: the table under its title and the command that makes it."""
    return ("# FLOPs and params of every step (fvcore, 1x3x224x224)\n\n"
            "Produced by `make flops` (`python -m modernize.flops_table`).\n\n" + FLOPS.markdown(rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="FLOPs/params of every roadmap step, paper beside it")
    parser.add_argument("--out", default="experiments/flops", help="folder for roadmap.md and roadmap.csv")
    args = parser.parse_args(argv)
    rows = flops_rows()
    markdown = page(rows)
    atomic_write_text(Path(args.out) / "roadmap.md", markdown)
    atomic_write_text(Path(args.out) / "roadmap.csv", FLOPS.csv(rows, "\r\n"))  # the csv module's default, as committed
    print(markdown)
