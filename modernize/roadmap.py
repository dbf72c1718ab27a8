"""The roadmap of the paper (Figure 2) as data: step names in order, and the published numbers."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

# The public contract: `+step=<name>` applies every delta from the start up to and including <name>.
STEPS: tuple[str, ...] = (
    "resnet50", "recipe", "stage_ratio", "patchify", "depthwise", "resnextify", "inverted_bottleneck",
    "move_up_dwconv", "kernel_size", "gelu", "fewer_activations", "fewer_norms", "layer_norm",
    "separate_downsampling",
)
# Every step but the first is one delta of the same name (conf/delta/<name>.yaml).
DELTAS: tuple[str, ...] = STEPS[1:]
KERNEL_SIZES: tuple[int, ...] = (3, 5, 7, 9, 11)


@functools.cache
def paper() -> dict[str, Any]:
    """The published numbers (modernize/reference/paper.yaml)."""
    return yaml.safe_load(resources.files("modernize").joinpath("reference/paper.yaml").read_text())


def paper_step(step: str) -> dict[str, Any] | None:
    """Figure 2's {top1, gflops} of a roadmap step, or None for a name the paper does not have."""
    return next((row for row in paper()["roadmap_resnet50_regime"] if row["step"] == step), None)


def paper_kernel(kernel: int) -> dict[str, Any] | None:
    return next((row for row in paper()["kernel_size_sweep"] if row["kernel"] == kernel), None)


def deltas_up_to(step: str) -> list[str]:
    check_names("step", [step], STEPS)
    return list(DELTAS[: STEPS.index(step)])


def leave_one_out(delta: str) -> list[str]:
    """The full roadmap minus one delta, as the Hydra override that composes it."""
    check_names("delta", [delta], DELTAS)
    return [f"+delta=[{','.join(d for d in DELTAS if d != delta)}]"]


def check_names(kind: str, names: list[str], valid: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"unknown {kind} {', '.join(repr(n) for n in unknown)}; valid {kind}s, in roadmap order: "
                         f"{', '.join(valid)}")
