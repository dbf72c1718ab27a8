"""The training-throughput benchmark runs end to end and writes a complete report.

Only the measured rows' shape and their arithmetic are checked: speed targets belong in the benchmark's own
output, never in a unit test (timings on a shared machine are noise at this size).
"""

import re

import pytest

from benchmarks import bench


def positive(value: float) -> float:
    assert value > 0, value
    return value


def check_ratio(row: dict) -> None:
    assert 0 < row["lo"] <= row["ratio"] <= row["hi"], row


@pytest.mark.slow
def test_quick_bench_writes_every_section(tmp_path):
    out = tmp_path / "bench"
    report = bench.measure(["--quick", "--threads", "1", "--steps", "resnet50,separate_downsampling",
                            "--profile", "gpu", "--out", str(out)])
    assert report.path == out / "cpu.md" and sorted(report.sections) == [1, 2, 3, 4, 5, 6]
    text = report.path.read_text()
    assert "python -m modernize.bench --quick" in text  # the exact command line is in the header
    assert re.search(r"torch \d+\.\d+", text) and "torch threads: 1" in text
    for number, found in report.sections.items():  # every section is in the file, rendered from its rows
        assert "\n".join(found.markdown()) in text, number

    # Section 1 at the cpu profile's size: the models as that profile trains them (x1/4, 10 classes), against
    # hand-written references with the same parameter count
    refs = report.sections[1].rows
    assert [(r["size"], r["threads"], r["model"], r["step"]) for r in refs] == [
        ("`cpu` profile", 1, "ResNet-50", "resnet50"), ("`cpu` profile", 1, "ConvNeXt-T", "separate_downsampling")]
    assert [r["reference"] for r in refs] == ["timm ResNet, widths 16/32/64/128", "timm convnext_tiny"]
    assert [round(r["params"], 2) for r in refs] == [1.49, 1.81]
    assert "| ResNet-50 (`resnet50`)" in text and "|         1.49 |" in text  # as the markdown shows them
    for row in refs:
        positive(row["ours"]), positive(row["reference_speed"]), check_ratio(row)

    # Section 6: ConvNeXt-T beside Swin-T and isotropic ConvNeXt-S beside DeiT-S at the cpu profile's size, training
    # and inference each timed interleaved
    peers = report.sections[6].rows
    assert [(r["pair"], r["mode"]) for r in peers] == [
        ("ConvNeXt-T / Swin-T", "train"), ("ConvNeXt-T / Swin-T", "inference"),
        ("ConvNeXt-S iso / DeiT-S", "train"), ("ConvNeXt-S iso / DeiT-S", "inference")]
    assert peers[0]["params"] == "1.8/1.7" and all(r["size"] == "`cpu` profile" for r in peers)
    for row in peers:
        positive(row["ours"]), positive(row["peer"]), check_ratio(row)

    steps = report.sections[2].rows
    assert [(r["number"], r["step"]) for r in steps] == [(0, "resnet50"), (13, "separate_downsampling")]
    for row in steps:
        positive(row["params"]), positive(row["speed"])
        assert row["lo"] <= row["speed"] <= row["hi"]

    # Section 3: the recipe as the cpu profile trains it, then the paper's at the profile's width and at full width
    pipeline = report.sections[3].rows
    assert [(r["recipe"], r["width"]) for r in pipeline] == [("as the `cpu` profile trains it", 0.25),
                                                             ("the paper's", 0.25), ("the paper's", 1)]
    assert "(resize and centre crop, flip, no RandAugment, erasing 0.005" in text  # what the cpu profile trains
    for row in pipeline:
        positive(row["bare"]), positive(row["end_to_end"]), check_ratio(row)

    folder = report.sections[5].rows
    assert [r["recipe"] for r in folder] == ["modern", "original"]
    for row in folder:
        positive(row["ours"]), positive(row["timm"]), check_ratio(row)

    # Section 4: each step at the gpu profile's sizes, with the epochs the profile's rules give it (the paper's
    # 300 : 90 at 100 modern epochs), and the seed's training time is the sum of the steps' epochs x 60k / img/s.
    cost = report.sections[4].rows
    assert [(r["step"], r["width"], r["resolution"], r["epochs"]) for r in cost] == [
        ("resnet50", 1, 64, 30), ("separate_downsampling", 1, 64, 100)]
    for row in cost:
        assert row["minutes"] == pytest.approx(row["epochs"] * 60_000 / positive(row["speed"]) / 60)
    total = float(re.search(r"these 2 steps at the `gpu` profile, one run at a time: \*\*([\d.]+) min", text)[1])
    assert total == pytest.approx(sum(r["minutes"] for r in cost), abs=0.051)


@pytest.mark.slow
def test_a_chosen_section_is_written_to_its_own_file(tmp_path):
    """--sections 4 writes <device>-sections-4.md and leaves the whole report (<device>.md) alone; without
    --profile it costs the `cpu` profile on a CPU."""
    report = bench.measure(["--quick", "--threads", "1", "--steps", "resnet50", "--sections", "4",
                            "--out", str(tmp_path)])
    assert report.path == tmp_path / "cpu-sections-4.md" and list(report.sections) == [4]
    text = report.path.read_text()
    assert "## 4. What one seed of the `cpu` profile's roadmap costs here" in text
    assert "## 1." not in text and "## 2." not in text and "## 3." not in text
    assert [r["epochs"] for r in report.sections[4].rows] == [6]  # the cpu profile's fixed 6 epochs
    assert [p.name for p in tmp_path.iterdir()] == ["cpu-sections-4.md"]


@pytest.mark.slow
def test_a_profiles_training_subset_is_what_its_seed_costs(tmp_path):
    """The smoke profile trains 256 images an epoch (train_subset), not the whole 60k."""
    report = bench.measure(["--quick", "--threads", "1", "--steps", "resnet50", "--profile", "smoke", "--sections",
                            "4", "--out", str(tmp_path)])
    assert "(256 training images, 10 classes)" in report.path.read_text()
    (row,) = report.sections[4].rows
    assert row["epochs"] == 2  # the smoke profile's epochs
    assert row["minutes"] == pytest.approx(2 * 256 / positive(row["speed"]) / 60)


def test_a_section_renders_its_rows_once():
    """A row the reference could not be built for (timm missing) shows dashes and why, not a timing."""
    found = bench.new_section("t", "intro", bench.speed_column("ours", "ours img/s"), bench.RATIO_SPREAD)
    found.rows = [{"ours": 1234.4, "ratio": 1.0, "lo": 0.9876, "hi": 1.01234}, {"note": "timm not installed"}]
    assert found.markdown()[4].splitlines()[2:] == ["|         1234 |        0.988..1.012 |",
                                                    "|            - |  timm not installed |"]


@pytest.mark.parametrize("argv, message", [
    (["--profile", "laptop"], "unknown --profile 'laptop'; known profiles: cpu, gpu, imagenet, smoke"),
    (["--sizes", "cpu,7"], "--sizes takes profile names (cpu, gpu, imagenet, smoke) and resolutions in px (>= 8) "
                           "separated by commas, got 7"),
    (["--sections", "7"], "--sections takes numbers 1-6 separated by commas, got '7'"),
    (["--sections", "one"], "--sections takes numbers 1-6 separated by commas, got 'one'"),
])
def test_bad_profile_or_section_is_rejected_before_any_work(tmp_path, argv, message):
    with pytest.raises(SystemExit, match=re.escape(message)):
        bench.main(["--quick", *argv, "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_bad_step_name_is_rejected(tmp_path):
    with pytest.raises(SystemExit, match="unknown step 'nope'"):
        bench.main(["--quick", "--steps", "nope", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())  # nothing written
