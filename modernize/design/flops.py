"""Params and FLOPs counted the paper's way (the table of every step, `make flops`, is modernize.flops_table).

FLOPs are fvcore's `FlopCountAnalysis` at 1x3x224x224: it counts one multiply-add as one "FLOP", which is
the convention of the paper's Figure 2 and tables (ResNet-50 = 4.1 GFLOPs).

A transformer's attention (the peers: modernize.design.peers) is counted too: timm computes it with
F.scaled_dot_product_attention, an op fvcore does not count, so while counting every timm attention module takes
timm's own unfused path (the same math: q @ k^T, softmax, @ v), whose two matmuls fvcore counts.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import warnings

import torch
from torch import nn

from ..io import atomic_write_json, cache_dir
from .model import build
from .spec import ModelSpec, spec_as_dict


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def unfused_attention(model: nn.Module):
    """timm's attention modules on their unfused path (`fused_attn`, read at each forward) while in the block."""
    fused = [m for m in model.modules() if getattr(m, "fused_attn", False)]
    for module in fused:
        module.fused_attn = False
    try:
        yield
    finally:
        for module in fused:
            module.fused_attn = True


def count_gflops(model: nn.Module, resolution: int = 224, in_chans: int = 3) -> float:
    logging.getLogger("fvcore").setLevel(logging.ERROR)  # elementwise ops are not counted, by design
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings(), unfused_attention(model):
            warnings.simplefilter("ignore", FutureWarning)  # fvcore traces with the deprecated torch.jit
            from fvcore.nn import FlopCountAnalysis

            analysis = FlopCountAnalysis(model, torch.zeros(1, in_chans, resolution, resolution, device=device))
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            return analysis.total() / 1e9
    finally:
        model.train(was_training)


def params_and_gflops(spec: ModelSpec, resolution: int = 224) -> dict:
    """Params and GFLOPs at `resolution`. Elsewhere GFLOPs are named by what they count: `gflops_224`, the paper
    scale model at 224 px (paper_scale_stats, the paper's numbers); `gflops_run`, the trained model at its run's
    resolution."""
    model = build(spec)
    return {"params": count_params(model), "gflops": count_gflops(model, resolution, spec.in_chans)}


@functools.cache
def paper_scale_stats(spec: ModelSpec) -> dict:
    """Params and GFLOPs at 224 px of a spec (the paper's numbers for a step), computed once per spec.

    Every training run reports them beside its proxy numbers, but tracing a full-size model with fvcore takes
    seconds to a minute; so they are cached in memory and on disk (keyed by the spec's contents), and a run
    builds the paper-scale model only the first time its spec is seen. The build runs on a forked RNG, so a
    cache hit and a miss leave the training's random stream the same.
    """
    contents = spec_as_dict(spec)
    key = hashlib.sha256(json.dumps(contents, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "paper_scale" / f"{key}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, AttributeError):
        cached = json.loads(path.read_text())
        if cached.get("spec") == contents:
            return {"params": cached["params"], "gflops_224": cached["gflops_224"]}
    with torch.random.fork_rng(devices=[]):
        stats = params_and_gflops(spec, 224)
    result = {"params": stats["params"], "gflops_224": stats["gflops"]}
    with contextlib.suppress(OSError):  # a read-only home only costs the next run the same trace
        atomic_write_json(path, {**result, "spec": contents})
    return result
