"""The roadmap of the paper (Figure 2) as data: step names in order, the labels of runs made of deltas, and the
published numbers. `python -m modernize.sweep` prints them for `make roadmap`."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

import yaml

# The one place the roadmap's order is written. The public contract: `+step=<name>` applies every delta from the
# start up to and including <name>; modernize.design.config generates the `step` configs from this tuple, the Makefile
# asks for it (`python -m modernize.sweep --steps`), and tables and figures follow it.
STEPS: tuple[str, ...] = (
    "resnet50", "recipe", "stage_ratio", "patchify", "depthwise", "resnextify", "inverted_bottleneck",
    "move_up_dwconv", "kernel_size", "gelu", "fewer_activations", "fewer_norms", "layer_norm",
    "separate_downsampling",
)
# Every step but the first is one delta of the same name (conf/delta/<name>.yaml). Deltas that are not on the
# roadmap (yours) are found on Hydra's search path (modernize.design.config.config_names), not listed here.
DELTAS: tuple[str, ...] = STEPS[1:]
KERNEL_SIZES: tuple[int, ...] = (3, 5, 7, 9, 11)
# Deltas that change how the model trains, not the model (the ablation's add-one base already has them).
TRAINING_DELTAS: tuple[str, ...] = ("recipe",)
# Prerequisites, written once: a delta whose change is the paper's change only on top of these (docs/ablation.md
# says why for each). Composing it without them builds a valid model, but not the one its name promises: a 7x7 dense
# conv is not the paper's 7x7 depthwise, an inverted bottleneck with a dense 3x3 on its 4x-wide layer has 7x the
# parameters of ResNet-50 (191M, 31.6 GFLOPs). `make ablate` adds a delta together with its prerequisites and
# removes a delta together with the deltas that need it (modernize.ablate). Each prerequisite is earlier on the
# roadmap, so every roadmap step has them.
REQUIRES: dict[str, tuple[str, ...]] = {
    "resnextify": ("depthwise",),           # 2.3: widens to win back the capacity depthwise removed
    "inverted_bottleneck": ("depthwise",),  # 2.4: MobileNetV2's block, affordable because the wide conv is depthwise
    "move_up_dwconv": ("depthwise", "inverted_bottleneck"),  # 2.5: the depthwise conv goes to the narrow end
    "kernel_size": ("depthwise",),          # 2.5: 3x3 -> 7x7 *depthwise* (Swin's 7x7 window, per channel)
}
# How a label writes a delta the run adds to its roadmap step, and one of the step's deltas it leaves out.
ADDED, REMOVED = "+", "-"
# The model the roadmap starts from (conf/model/resnet50.yaml). A run on another model (`model=resnet200`) carries
# that model in its label: its name alone, or after its roadmap label ('separate_downsampling@resnet200'), so that
# no run on another base is read as, or compared with, the ResNet-50 roadmap's step of the same name.
ROADMAP_BASE, ON_BASE = STEPS[0], "@"


@functools.cache
def paper() -> dict[str, Any]:
    """The published numbers (modernize/reference/paper.yaml)."""
    return yaml.safe_load(resources.files("modernize").joinpath("reference/paper.yaml").read_text())


def paper_step(step: str) -> dict[str, Any] | None:
    """Figure 2's {top1, gflops} of a roadmap step, or None for a name the paper does not have."""
    return next((row for row in paper()["roadmap_resnet50_regime"] if row["step"] == step), None)


def paper_kernel(kernel: int) -> dict[str, Any] | None:
    return next((row for row in paper()["kernel_size_sweep"] if row["kernel"] == kernel), None)


def paper_reference(label: str) -> dict[str, Any] | None:
    """The paper's {top1, gflops, params, source} for a run's label, or None where the paper has no number for it:
    a roadmap step (Figure 2); a model of its own (`model=convnext_s`: Table 1; the isotropic ones: Table 2); a step
    on ResNet-200 ('inverted_bottleneck@resnet200': section 2's ResNet-200 regime, which publishes three numbers and
    ends at ConvNeXt-B). top1 is None where the paper gives no ImageNet-1K number (ConvNeXt-XL)."""
    name, _, base = label.partition(ON_BASE)
    if base:
        rows = paper().get(f"roadmap_{base}_regime", [])
        row = next((r for r in rows if r["step"] == name), None)
        return None if row is None else {"top1": row.get("top1"), "gflops": row.get("gflops"),
                                         "params": row.get("params"), "source": f"section {row['section']}"}
    if (row := paper_step(name)) is not None:
        return {"top1": row["top1"], "gflops": row["gflops"], "params": None, "source": "Figure 2"}
    if (row := paper()["variants"].get(name)) is not None:
        return {"top1": row.get("top1_in1k"), "gflops": row["gflops"], "params": row["params"], "source": "Table 1"}
    if (row := paper()["isotropic"].get(name)) is not None:
        return {"top1": row["top1_in1k"], "gflops": row["gflops"], "params": row["params_m"] * 10**6,
                "source": "Table 2"}
    if (row := paper()["peers"].get(name)) is not None:
        return {"top1": row["top1_in1k"], "gflops": row["gflops"], "params": row["params_m"] * 10**6,
                "source": f"Table {row['table']}"}
    return None


def deltas_up_to(step: str) -> list[str]:
    check_names("step", [step], STEPS)
    return list(DELTAS[: STEPS.index(step)])


def leave_one_out(delta: str) -> list[str]:
    """The full roadmap minus one delta, as the Hydra override that composes it (labelled
    'separate_downsampling-<delta>')."""
    check_names("delta", [delta], DELTAS)
    return [f"+delta=[{','.join(d for d in DELTAS if d != delta)}]"]


def prerequisites(delta: str) -> list[str]:
    """Every delta `delta` needs (REQUIRES, transitively), in roadmap order."""
    needed: set[str] = set()
    todo = list(REQUIRES.get(delta, ()))
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(REQUIRES.get(name, ()))
    return [d for d in DELTAS if d in needed]


def dependents(delta: str) -> list[str]:
    """Every delta that needs `delta` (REQUIRES, transitively), in roadmap order."""
    return [d for d in DELTAS if delta in prerequisites(d)]


def missing_prerequisites(deltas: Sequence[str]) -> dict[str, list[str]]:
    """{delta: its prerequisites absent from `deltas`} for each delta of the list that lacks some."""
    present = set(deltas)
    return {d: missing for d in deltas if (missing := [p for p in prerequisites(d) if p not in present])}


def run_label(deltas: Sequence[str]) -> str:
    """The name of the model these deltas make when applied to the base in this order: the roadmap step it is
    closest to, then '-<delta>' for each delta of that step it leaves out and '+<delta>' for each it adds.

    A roadmap step's own deltas give the step's name, so a run labels the same whichever way it was composed:
    `+step=gelu "+delta=[layer_norm]"` is 'gelu+layer_norm', leave_one_out('gelu') is
    'separate_downsampling-gelu', `+delta=[gelu,layer_norm]` is 'resnet50+gelu+layer_norm'. Closest means fewest
    edits; a tie goes to the step with fewer deltas left out, then to the later step.
    """
    applied = list(dict.fromkeys(deltas))

    def edits(step: str) -> tuple[list[str], list[str]]:
        prefix = DELTAS[: STEPS.index(step)]
        return [d for d in prefix if d not in applied], [d for d in applied if d not in prefix]

    def distance(step: str) -> tuple[int, int]:
        removed, added = edits(step)
        return len(removed) + len(added), len(removed)

    base = min(reversed(STEPS), key=distance)  # min keeps the first of equals: the later step
    removed, added = edits(base)
    return base + "".join(REMOVED + d for d in removed) + "".join(ADDED + d for d in added)


def base_step(label: str) -> str | None:
    """The roadmap step a label extends ('gelu' for 'gelu+layer_norm'), or None for a name that extends none."""
    steps = [s for s in STEPS if label == s or (label.startswith(s) and label[len(s)] in (ADDED, REMOVED))]
    return max(steps, key=len, default=None)


def label_deltas(label: str) -> list[str]:
    """The deltas a label stands for, in the order they apply: its roadmap step's, less the removed, then the added
    ones. The inverse of run_label: `+delta=[<these>]` composes the run that label names."""
    base = base_step(label)
    if base is None:
        raise ValueError(f"label {label!r} does not start with a roadmap step; a label is <step>[+delta|-delta]..., "
                         f"steps, in roadmap order: {', '.join(STEPS)}")
    signs = re.escape(ADDED + REMOVED)
    edits = re.findall(rf"([{signs}])([^{signs}]+)", label[len(base):])
    removed = {name for sign, name in edits if sign == REMOVED}
    check_names("delta", sorted(removed), deltas_up_to(base),
                hint=f"a label leaves out only deltas of its step {base!r}")
    return [d for d in deltas_up_to(base) if d not in removed] + [name for sign, name in edits if sign == ADDED]


def roadmap_first(names: Sequence[str]) -> list[str]:
    """Names in roadmap order, then the others alphabetically."""
    return [s for s in STEPS if s in names] + sorted(set(names) - set(STEPS))


def check_names(kind: str, names: Sequence[str], valid: Sequence[str], hint: str = "") -> None:
    """Raise a ValueError naming each unknown name and listing the valid ones, the roadmap's first in its order,
    then the hint."""
    unknown = [n for n in names if n not in valid]
    if not unknown:
        return
    ordered = roadmap_first(valid)
    on_roadmap = [n for n in ordered if n in STEPS]
    others = [n for n in ordered if n not in STEPS]
    message = f"unknown {kind} {', '.join(repr(n) for n in unknown)}; valid {kind}s"
    message += f", in roadmap order: {', '.join(on_roadmap)}" if on_roadmap else f": {', '.join(others)}"
    if on_roadmap and others:
        message += f"; also found: {', '.join(others)}"
    raise ValueError(f"{message} ({hint})" if hint else message)


def step_index(label: str) -> float:
    """A run's position on the roadmap, for sorting runs in W&B: a roadmap step's index, a label that extends a step
    ('separate_downsampling+silu') that step's index + 0.5 (so it sorts right after it), any other label after the
    roadmap."""
    if label in STEPS:
        return STEPS.index(label)
    base = base_step(label)
    return STEPS.index(base) + 0.5 if base is not None else len(STEPS)


def sort_label(label: str) -> str:
    """The label prefixed so that sorting the text sorts by roadmap position: '00 resnet50', '13 separate_downsampling',
    '13+ separate_downsampling+silu', '14 custom' (W&B sorts and groups config values as text)."""
    index = step_index(label)
    return f"{int(index):02d}{'+' if index % 1 else ''} {label}"
