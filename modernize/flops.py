"""Params and FLOPs counted the paper's way, and the roadmap's FLOPs table (`make flops`).

FLOPs are fvcore's `FlopCountAnalysis` at 1x3x224x224: it counts one multiply-add as one "FLOP", which is
the convention of the paper's Figure 2 and tables (ResNet-50 = 4.1 GFLOPs).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from . import columns
from .columns import Column, csv_names
from .config import compose, model_spec
from .io import atomic_write_json, atomic_write_text
from .model import build
from .roadmap import KERNEL_SIZES, STEPS, paper, paper_kernel, paper_step
from .spec import ModelSpec


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: nn.Module, resolution: int = 224, in_chans: int = 3) -> float:
    logging.getLogger("fvcore").setLevel(logging.ERROR)  # elementwise ops are not counted, by design
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # fvcore traces with the deprecated torch.jit
            from fvcore.nn import FlopCountAnalysis

            analysis = FlopCountAnalysis(model, torch.zeros(1, in_chans, resolution, resolution, device=device))
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            return analysis.total() / 1e9
    finally:
        model.train(was_training)


def measure(spec: ModelSpec, resolution: int = 224) -> dict:
    model = build(spec)
    return {"params": count_params(model), "gflops": count_gflops(model, resolution, spec.in_chans)}


def cache_dir() -> Path:
    """Where computed numbers are kept between runs: $MODERNIZE_CACHE_DIR, else ~/.cache/modernize."""
    return Path(os.environ.get("MODERNIZE_CACHE_DIR") or "~/.cache/modernize").expanduser()


@functools.cache
def paper_scale_stats(spec: ModelSpec) -> dict:
    """Params and GFLOPs at 224 px of a spec (the paper's numbers for a step), computed once per spec.

    Every training run reports them beside its proxy numbers, but tracing a full-size model with fvcore takes
    seconds to a minute; so they are cached in memory and on disk (keyed by the spec's contents), and a run
    builds the paper-scale model only the first time its spec is seen. The build runs on a forked RNG, so a
    cache hit and a miss leave the training's random stream the same.
    """
    contents = json.loads(json.dumps(dataclasses.asdict(spec)))  # as JSON gives it back: tuples are lists
    key = hashlib.sha256(json.dumps(contents, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "paper_scale" / f"{key}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, AttributeError):
        cached = json.loads(path.read_text())
        if cached.get("spec") == contents:
            return {"params": cached["params"], "gflops_224": cached["gflops_224"]}
    with torch.random.fork_rng(devices=[]):
        stats = measure(spec, 224)
    result = {"params": stats["params"], "gflops_224": stats["gflops"]}
    with contextlib.suppress(OSError):  # a read-only home only costs the next run the same trace
        atomic_write_json(path, {**result, "spec": contents})
    return result


def roadmap_rows() -> list[dict]:
    """Every roadmap step, the kernel sweep, the ResNet-200 -> ConvNeXt-B regime and the variants."""
    rows = []
    for step in STEPS:
        ref = paper_step(step)
        rows.append({"group": "roadmap", "name": step, **measure(model_spec(compose([f"+step={step}"]))),
                     "paper_gflops": ref["gflops"], "paper_top1": ref["top1"]})
    for k in KERNEL_SIZES:
        ref = paper_kernel(k)
        spec = model_spec(compose(["+step=kernel_size", f"model.block.kernel_size={k}"]))
        rows.append({"group": "kernel_size", "name": f"kernel_size={k}", **measure(spec),
                     "paper_gflops": ref["gflops"], "paper_top1": ref["top1"]})
    variants = paper()["variants"]
    for step in ("resnet50", "stage_ratio", "resnextify", "inverted_bottleneck", "separate_downsampling"):
        spec = model_spec(compose([f"+step={step}", "model=resnet200"]))
        ref = {"resnet50": {"gflops": None}, "separate_downsampling": variants["convnext_b"]}.get(step, {})
        rows.append({"group": "resnet200_regime", "name": step, **measure(spec),
                     "paper_gflops": ref.get("gflops"), "paper_top1": ref.get("top1_in1k"),
                     "paper_params": ref.get("params")})
    for name in ("convnext_t", "convnext_s", "convnext_b", "convnext_l", "convnext_xl"):
        ref = variants[name]
        rows.append({"group": "variants", "name": name, **measure(model_spec(compose([f"model={name}"]))),
                     "paper_gflops": ref["gflops"], "paper_top1": ref.get("top1_in1k"), "paper_params": ref["params"]})
    for name, ref in paper()["isotropic"].items():
        rows.append({"group": "isotropic", "name": name, **measure(model_spec(compose([f"model={name}"]))),
                     "paper_gflops": ref["gflops"], "paper_top1": ref["top1_in1k"],
                     "paper_params": ref["params_m"] * 10**6})
    return rows


def _diff_cell(r: dict) -> str:
    return "" if r.get("paper_gflops") is None else f"{r['gflops'] - r['paper_gflops']:+.2f}"


# roadmap.csv has every column with a name, roadmap.md every column with a header, in this order
TABLE = (
    Column("group", "group", align="left"),
    Column("name", "model", align="left"),
    Column("params", "params", ","),
    Column("gflops", "GFLOPs (ours)", ".2f"),
    Column("paper_params", "paper params", ","),
    Column("paper_gflops", "GFLOPs (paper)", ".1f"),
    Column(None, "diff", _diff_cell),
    Column("paper_top1", "paper top-1", ".1f"),
)
COLUMNS = tuple(csv_names(TABLE))


def to_markdown(rows: list[dict]) -> str:
    return columns.to_markdown(TABLE, rows)


def to_csv(rows: list[dict]) -> str:
    return columns.to_csv(TABLE, rows, lineterminator="\r\n")  # the csv module's default, as committed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="FLOPs/params of every roadmap step, paper beside it")
    parser.add_argument("--out", default="experiments/flops", help="folder for roadmap.md and roadmap.csv")
    args = parser.parse_args(argv)
    rows = roadmap_rows()
    markdown = ("# FLOPs and params of every step (fvcore, 1x3x224x224)\n\n"
                "Produced by `make flops` (`python -m modernize.flops`).\n\n" + to_markdown(rows))
    atomic_write_text(Path(args.out) / "roadmap.md", markdown)
    atomic_write_text(Path(args.out) / "roadmap.csv", to_csv(rows))
    print(markdown)


if __name__ == "__main__":
    main()
