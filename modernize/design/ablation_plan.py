"""The ablation matrix's plan (docs/ablation.md): which runs it trains and which it compares, as data from
modernize.design.roadmap. Each delta is added alone to ResNet-50 with the modern recipe (add-one) and removed alone
from ConvNeXt-T (leave-one-out); a delta with prerequisites (REQUIRES) is added with them and compared with the run
that has only them, and removing a delta removes the deltas that need it too. Launching the runs
(modernize.training.sweeps) and tabulating them (modernize.results.ablation) both read it here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .roadmap import DELTAS, STEPS, TRAINING_DELTAS, check_names, dependents, prerequisites, run_label

ADD_ANCHOR = "recipe"  # ResNet-50 with the modern recipe: the roadmap step whose deltas are the add-one base
REMOVE_ANCHOR = STEPS[-1]  # ConvNeXt-T
ANCHOR_NAMES = {ADD_ANCHOR: "ResNet-50 (modern recipe)", REMOVE_ANCHOR: "ConvNeXt-T"}


@dataclass(frozen=True)
class Comparison:
    """One measured effect: `run` against `reference` (both delta lists in roadmap order). For "add" the delta is in
    `run`, for "remove" it is in `reference`; `extra` lists the prerequisites added with it (add) or the dependents
    removed with it (remove)."""

    delta: str
    direction: str  # "add" | "remove"
    run: tuple[str, ...]
    reference: tuple[str, ...]
    extra: tuple[str, ...]

    @property
    def run_label(self) -> str:
        return run_label(self.run)

    @property
    def reference_label(self) -> str:
        return run_label(self.reference)

    @property
    def with_delta(self) -> str:
        """The label of the run that has the delta."""
        return self.run_label if self.direction == "add" else self.reference_label

    @property
    def without_delta(self) -> str:
        return self.reference_label if self.direction == "add" else self.run_label


def _ordered(names) -> tuple[str, ...]:
    names = set(names)
    return tuple(d for d in DELTAS if d in names)


def add_one(delta: str) -> Comparison:
    """`delta` (with its prerequisites) on ResNet-50 + the modern recipe, against the same without `delta`."""
    base = (*TRAINING_DELTAS, *prerequisites(delta))
    return Comparison(delta, "add", _ordered((*base, delta)), _ordered(base), tuple(prerequisites(delta)))


def remove_one(delta: str) -> Comparison:
    """ConvNeXt-T without `delta` (and without the deltas that need it), against ConvNeXt-T."""
    gone = {delta, *dependents(delta)}
    return Comparison(delta, "remove", _ordered(d for d in DELTAS if d not in gone), tuple(DELTAS),
                      tuple(dependents(delta)))


def added_deltas() -> list[str]:
    """The deltas measured by add-one: every architecture delta (the base already has the training recipe)."""
    return [d for d in DELTAS if d not in TRAINING_DELTAS]


def comparisons(deltas: Sequence[str] | None = None) -> list[Comparison]:
    """Every comparison of the matrix, or only those of the given deltas."""
    if deltas is not None:
        check_names("delta", list(deltas), DELTAS, hint="the ablation covers the roadmap's deltas")
    chosen = DELTAS if deltas is None else [d for d in DELTAS if d in deltas]
    return [add_one(d) for d in added_deltas() if d in chosen] + [remove_one(d) for d in chosen]


def runs(deltas: Sequence[str] | None = None) -> list[tuple[str, ...]]:
    """Every run the ablation trains (of the given deltas only, when given), once each: the two anchors, then the
    add-one runs, then leave-one-out."""
    plan = [tuple(DELTAS[: STEPS.index(ADD_ANCHOR)]), tuple(DELTAS)]
    for c in comparisons(deltas):
        plan += [c.reference, c.run] if c.direction == "add" else [c.run]
    return list(dict.fromkeys(plan))


def labels(deltas: Sequence[str] | None = None) -> list[str]:
    return [run_label(r) for r in runs(deltas)]


def delta_lists(deltas: Sequence[str] | None = None) -> str:
    """The Hydra sweep value of `+delta=` that trains every run: [recipe],[recipe,...],..."""
    return ",".join(f"[{','.join(r)}]" for r in runs(deltas))
