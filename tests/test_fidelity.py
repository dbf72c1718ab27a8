"""The fidelity score on hand-made tables whose answers are known."""

import math

import pytest

from modernize.results import fidelity
from modernize.design.roadmap import STEPS, paper_step

PAPER = {s: paper_step(s)["top1"] for s in STEPS}


def table(per_seed_offsets, scale=1.0, base=90.0):
    """A roadmap whose levels follow the paper's (times `scale`), plus a per-seed offset for each row."""
    rows = []
    for i, step in enumerate(STEPS):
        level = base + scale * (PAPER[step] - PAPER["resnet50"])
        rows.append({"label": step, "paper_top1": PAPER[step],
                     "top1_by_seed": {s: level + offsets[i] for s, offsets in per_seed_offsets.items()}})
    return rows


def noise(seed, amplitude=0.01):
    # a fixed, small, seed-dependent wiggle per row
    return [amplitude * math.sin(7 * seed + 3 * i) for i in range(len(STEPS))]


def test_a_proxy_that_copies_the_paper_scores_perfectly():
    score = fidelity.score(table({s: noise(s) for s in range(3)}))
    assert [d["step"] for d in score["decisive"]] == [
        "recipe", "stage_ratio", "depthwise", "resnextify", "move_up_dwconv", "kernel_size", "fewer_activations",
        "separate_downsampling"]
    assert score["decisive_agree"] == 8 and score["decisive_significant"] == 8
    assert score["pearson_r"] > 0.99 and score["pearson_low"] > 0.99
    convnext_vs_resnet = score["end_to_end"][0]
    assert convnext_vs_resnet["base"] == "resnet50"
    assert convnext_vs_resnet["mean"] == pytest.approx(82.0 - 76.1, abs=0.05)
    assert convnext_vs_resnet["low"] > 5.5 and convnext_vs_resnet["paper"] == pytest.approx(5.9)


def test_ties_follow_the_paper_only_within_noise():
    # the paper's tie steps move by <= 0.1: a proxy that copies them exactly with 0.5-point seed noise keeps them
    # within noise; one that moves every tie by 3 points with the same noise does not
    noisy = {s: [0.5 * ((s * 5 + i * 3) % 7 - 3) / 3 for i in range(len(STEPS))] for s in range(3)}
    assert fidelity.score(table(noisy))["ties_within_noise"] == 5
    moved = table(noisy)
    for i, row in enumerate(moved):
        if row["label"] in ("patchify", "inverted_bottleneck", "gelu", "fewer_norms", "layer_norm"):
            for later in moved[i:]:
                later["top1_by_seed"] = {s: v + 3.0 for s, v in later["top1_by_seed"].items()}
    assert fidelity.score(moved)["ties_within_noise"] == 0


def test_a_proxy_that_reverses_the_paper_agrees_on_nothing():
    score = fidelity.score(table({s: noise(s) for s in range(3)}, scale=-1.0))
    assert score["decisive_agree"] == 0 and score["decisive_significant"] == 0
    assert score["pearson_r"] < -0.99
    assert score["end_to_end"][0]["mean"] < 0 and score["end_to_end"][0]["high"] < 0


def test_significance_needs_the_change_to_stand_out_of_the_seed_noise():
    # every step change is the paper's, but seeds disagree by +-5 points at each row independently
    wild = {s: [5.0 * math.sin(11 * s + 5 * i) for i in range(len(STEPS))] for s in range(3)}
    score = fidelity.score(table(wild))
    assert score["decisive_significant"] < score["decisive_agree"] or score["decisive_agree"] < 8
    assert score["pearson_high"] - score["pearson_low"] > 0.2  # the bootstrap interval is wide


def test_one_seed_gives_signs_and_r_but_no_intervals():
    score = fidelity.score(table({0: noise(0)}))
    assert score["decisive_agree"] == 8 and score["decisive_significant"] == 0
    assert score["pearson_low"] is None
    assert score["end_to_end"][0]["low"] is None  # one seed: no interval (modernize.results.stats.change_between)
    assert "1 seed" in fidelity.line(score) and "ties need 3+ seeds" in fidelity.line(score)


def test_the_line_states_every_part():
    text = fidelity.line(fidelity.score(table({s: noise(s) for s in range(3)})))
    assert text.startswith("Fidelity (3 seeds): decisive steps 8/8 agree in sign (8 significant); ties ")
    assert "within noise; Pearson r of step changes 1.00 [" in text
    assert "ConvNeXt-T − ResNet-50 +5.90 [" in text and "(paper +5.9)" in text
    assert "ConvNeXt-T − ResNet-50 (modern recipe) +3.2" in text


def test_missing_steps_are_skipped_not_invented():
    rows = [r for r in table({s: noise(s) for s in range(2)}) if r["label"] not in ("recipe", "kernel_size")]
    score = fidelity.score(rows)
    steps = [d["step"] for d in score["decisive"]]
    assert "recipe" not in steps and "kernel_size" not in steps
    assert [e["base"] for e in score["end_to_end"]] == ["resnet50"]


def test_the_kernel_trend_asks_whether_7_beats_3_and_saturates():
    rows = [{"label": f"kernel_size k={k}", "top1_by_seed": {0: 80 + k / 10, 1: 80.2 + k / 10, 2: 79.9 + k / 10},
             "paper_top1": top1} for k, top1 in ((3, 79.9), (5, 80.4), (7, 80.6), (9, 80.6), (11, 80.6))]
    trend = fidelity.kernel_trend(rows)
    assert [(c["big"], c["small"]) for c in trend["contrasts"]] == [(7, 3), (9, 7), (11, 7)]
    assert [round(c["mean"], 6) for c in trend["contrasts"]] == [0.4, 0.2, 0.4]
    assert [c["paper"] for c in trend["contrasts"]] == [0.7, 0.0, 0.0] and trend["seeds"] == 3
    line = fidelity.kernel_line(trend)
    # every seed gains exactly 0.4: no variance, so neither an interval nor a test (modernize.results.stats)
    assert line.startswith("Kernel trend (3 seeds): 7x7 − 3x3 +0.40 (paper +0.7); 9x9 − 7x7")
    assert fidelity.kernel_line(fidelity.kernel_trend(rows[:1])) == \
        "Kernel trend (0 seeds): no pair of kernel sizes finished."


def test_every_table_takes_its_change_from_the_one_paired_comparison():
    """The roadmap, the fidelity score, the kernel trend, the ablation and compare all report stats.change_between:
    one rule for a zero change (no direction, so it agrees with none), for the paper's rounding, and for too few seeds
    or no variance (no test). A zero change once agreed with a rising paper step in the table (copysign(1, 0.0) is
    +1) but not in the fidelity score."""
    from modernize.results.roadmap_table import change_against
    from modernize.results.stats import agrees, change_between, paper_change

    flat = {"top1_mean": 80.0, "top1_by_seed": {0: 80.0, 1: 80.2, 2: 79.8}, "paper_top1": 80.6}
    before = {"top1_mean": 80.0, "top1_by_seed": {0: 80.0, 1: 80.2, 2: 79.8}, "paper_top1": 79.9}
    assert change_against(flat, before)["agrees"] == "no" and agrees(0.0, 0.7) is False
    assert paper_change(80.6, 79.9) == 0.7 and paper_change(80.6, 80.6) == 0
    assert change_against({**flat, "paper_top1": 79.9}, before)["agrees"] == "flat in paper"
    score = fidelity.score([{"label": "a", **before}, {"label": "b", **flat}])
    assert score["decisive"][0]["agrees"] is False and score["decisive"][0]["paper"] == 0.7
    change = change_between({0: 81.0, 1: 81.5, 2: 80.6}, before["top1_by_seed"])
    assert change.n == 3 and change.low < change.change < change.high and change.p is not None
    unpaired = change_between({5: 81.0, 6: 81.5, 7: 80.6}, before["top1_by_seed"])  # no seed in common: Welch's
    assert unpaired.n == 0 and unpaired.low is None and unpaired.p is not None
    assert change_between({0: 81.0}, before["top1_by_seed"]).p is None  # one seed: no test
