"""The ablation matrix (modernize.ablate, make ablate): its plan, its prerequisites, its models and its table."""

import csv
import dataclasses

import pytest

from modernize.design import ablation_plan as plan
from modernize.results import ablation as ablate
from modernize.design.roadmap import (DELTAS, REQUIRES, STEPS, TRAINING_DELTAS, dependents, label_deltas,
                               missing_prerequisites, prerequisites, run_label)

ARCHITECTURE = [d for d in DELTAS if d not in TRAINING_DELTAS]


# ------------------------------------------------------------------------------------------------ the plan
def test_prerequisites_are_earlier_roadmap_deltas_so_every_roadmap_step_has_them():
    for delta, needs in REQUIRES.items():
        assert delta in DELTAS and needs
        assert all(DELTAS.index(n) < DELTAS.index(delta) for n in needs), delta
    for step in STEPS:
        assert missing_prerequisites(label_deltas(step)) == {}


def test_prerequisites_and_dependents_are_transitive_and_inverse():
    assert prerequisites("move_up_dwconv") == ["depthwise", "inverted_bottleneck"]
    assert prerequisites("kernel_size") == ["depthwise"] and prerequisites("gelu") == []
    assert dependents("depthwise") == ["resnextify", "inverted_bottleneck", "move_up_dwconv", "kernel_size"]
    assert dependents("inverted_bottleneck") == ["move_up_dwconv"] and dependents("gelu") == []
    for a in DELTAS:
        for b in DELTAS:
            assert (a in prerequisites(b)) == (b in dependents(a))
    assert missing_prerequisites(["recipe", "kernel_size"]) == {"kernel_size": ["depthwise"]}


def test_every_delta_is_removed_and_every_architecture_delta_added():
    adds = [c for c in plan.comparisons() if c.direction == "add"]
    removes = [c for c in plan.comparisons() if c.direction == "remove"]
    assert [c.delta for c in adds] == ARCHITECTURE and "recipe" not in [c.delta for c in adds]
    assert [c.delta for c in removes] == list(DELTAS)
    for c in adds:  # the base: the modern recipe and the delta's prerequisites, nothing else
        assert c.reference == ("recipe", *prerequisites(c.delta)) and set(c.run) - set(c.reference) == {c.delta}
    for c in removes:  # ConvNeXt-T without the delta and what needs it, nothing else
        assert c.reference == DELTAS and set(DELTAS) - set(c.run) == {c.delta, *dependents(c.delta)}


def test_the_rows_say_what_they_are():
    add, remove = plan.add_one("kernel_size"), plan.remove_one("inverted_bottleneck")
    assert (add.run_label, add.reference_label) == ("recipe+depthwise+kernel_size", "recipe+depthwise")
    assert remove.run_label == "separate_downsampling-inverted_bottleneck-move_up_dwconv"
    assert plan.remove_one("recipe").run_label == "separate_downsampling-recipe"
    assert plan.add_one("gelu").run_label == "recipe+gelu"


def test_the_sweep_has_the_anchors_first_and_every_run_once():
    labels = plan.labels()
    assert labels[:2] == ["recipe", "separate_downsampling"] and len(labels) == len(set(labels))
    needed = {label for c in plan.comparisons() for label in (c.run_label, c.reference_label)}
    assert set(labels) == needed
    # each label names its deltas exactly (the folder of a run is its label)
    for deltas in plan.runs():
        assert label_deltas(run_label(deltas)) == list(deltas)
        assert missing_prerequisites(deltas) == {}, run_label(deltas)
    value = plan.delta_lists()
    assert value.startswith("[recipe],[recipe,stage_ratio,") and value.count("[") == len(labels)
    assert plan.labels(["kernel_size"]) == ["recipe", "separate_downsampling", "recipe+depthwise",
                                              "recipe+depthwise+kernel_size", "separate_downsampling-kernel_size"]
    with pytest.raises(ValueError, match="unknown delta 'bogus'"):
        plan.runs(["bogus"])


def _flat(spec):
    return {k: tuple(v) if isinstance(v, list) else v
            for k, v in _flatten(dataclasses.asdict(spec)).items()}


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


@pytest.mark.slow  # composes all 27 runs
def test_every_ablation_run_builds_the_model_its_label_names():
    """Compose each run as make ablate does (+delta=[...]) and compare every spec field with what its label's
    deltas set, each delta's fields measured alone on ResNet-50 (they are disjoint, so they add up)."""
    from modernize.design.config import compose, model_spec

    base = _flat(model_spec(compose(["+delta=[]"])))
    sets = {}
    for delta in DELTAS:
        alone = _flat(model_spec(compose([f"+delta=[{delta}]"])))
        sets[delta] = {k: v for k, v in alone.items() if v != base[k]}
        assert sets[delta], f"{delta} changes no field"
    for a in DELTAS:
        for b in DELTAS:
            assert a == b or not set(sets[a]) & set(sets[b]), (a, b)
    for deltas in plan.runs():
        cfg = compose([f"+delta=[{','.join(deltas)}]"])
        assert cfg.label == run_label(deltas)
        expected = dict(base)
        for d in deltas:
            expected.update(sets[d])
        assert _flat(model_spec(cfg)) == expected, cfg.label
        assert (cfg.recipe.name == "modern") == ("recipe" in deltas)
        spec = model_spec(cfg)  # and what the prerequisites protect: no dense 7x7, no dense inverted block
        if spec.block.kernel_size > 3 or spec.block.inverted or spec.block.spatial_position == "top" \
                or spec.widths != (64, 128, 256, 512):
            assert spec.block.groups == "depthwise", cfg.label
        if spec.block.spatial_position == "top":
            assert spec.block.inverted, cfg.label


# ------------------------------------------------------------------------------------------------ the table
def _result(label, top1, seed):
    return {"status": "ok", "label": label, "seed": seed, "final_top1": top1, "params": 1, "gflops_224": 1.0}


def _collected(top1_of):
    """Every run of the plan on seeds 0-2, top-1 from top1_of(label, seed)."""
    return {label: [_result(label, top1_of(label, s), s) for s in range(3)] for label in plan.labels()}


def test_gains_are_with_minus_without_paired_by_seed_for_both_directions():
    def top1(label, seed):
        value = 80.0 + seed  # the seed's share cancels in the pairing
        if "kernel_size" in label_deltas(label):
            value += 1.0 + 0.1 * seed
        return value

    table, runs = ablate.ablation_rows(_collected(top1))
    row = {r["delta"]: r for r in table}["kernel_size"]
    assert row["add_run"] == "recipe+depthwise+kernel_size" and row["add_reference"] == "recipe+depthwise"
    assert row["add_effect"] == pytest.approx(1.1) and row["remove_effect"] == pytest.approx(1.1)
    assert row["add_low"] < 1.1 < row["add_high"] and row["add_n"] == 3 and row["add_significant"] is True
    assert row["paper_change"] == pytest.approx(0.7) and row["section"] == "2.5"
    gelu = {r["delta"]: r for r in table}["gelu"]
    # the same top-1 with and without on every seed: no variance, so no test (modernize.results.stats)
    assert gelu["add_effect"] == 0 and gelu["add_significant"] is None and gelu["remove_effect"] == 0
    depthwise = {r["delta"]: r for r in table}["depthwise"]
    # removing depthwise removes kernel_size with it, so ConvNeXt-T gains 1.1 from the pair
    assert depthwise["remove_extra"] == "resnextify inverted_bottleneck move_up_dwconv kernel_size"
    assert depthwise["remove_effect"] == pytest.approx(1.1) and depthwise["add_effect"] == 0
    recipe = {r["delta"]: r for r in table}["recipe"]
    assert recipe["add_status"] == "base has it" and recipe["add_effect"] is None
    assert {r["run"]: r["role"] for r in runs}["recipe+depthwise"] == "add depthwise; base of add resnextify; " \
        "base of add inverted_bottleneck; base of add kernel_size"


def test_missing_failed_and_one_seed_rows_are_shown_not_hidden():
    collected = {label: [_result(label, 80.0, 0)] for label in plan.labels(["gelu"])}
    collected["separate_downsampling-gelu"] = [{"status": "failed", "label": "separate_downsampling-gelu",
                                                "error": "RunError: boom"}]
    table, runs = ablate.ablation_rows(collected)
    row = {r["delta"]: r for r in table}
    assert row["gelu"]["add_effect"] == 0 and row["gelu"]["add_p"] is None and row["gelu"]["add_low"] is None
    assert row["gelu"]["remove_status"] == "failed" and row["stage_ratio"]["add_status"] == "missing"
    markdown = ablate.ablation_markdown(table, runs, "t")
    assert "not tested" in markdown and "failed: RunError: boom" in markdown
    header = next(csv.reader([ablate.ABLATION.csv(table).splitlines()[0]]))
    assert {"add_effect", "add_low", "add_high", "add_p", "remove_effect", "paper_change"} <= set(header)
