"""The training-throughput benchmark runs end to end and writes a complete report.

Only the report's shape is checked: speed targets belong in the benchmark's own output, never in a unit
test (timings on a shared machine are noise at this size).
"""

import re

import pytest

from modernize.results import bench


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table_rows(text: str, section: str) -> list[list[str]]:
    """The body rows of the first markdown table after the heading that starts with `section`."""
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    rows = [cells(line) for line in body.splitlines() if line.startswith("|")]
    return rows[2:]  # drop the header and the |---| line


def positive(cell: str) -> float:
    value = float(cell)
    assert value > 0, cell
    return value


@pytest.mark.slow
def test_quick_bench_writes_every_section(tmp_path):
    out = tmp_path / "bench"
    path = bench.main(["--quick", "--threads", "1", "--steps", "resnet50,separate_downsampling",
                       "--profile", "gpu", "--out", str(out)])
    assert path == out / "cpu.md"
    text = path.read_text()
    assert "python -m modernize.bench --quick" in text  # the exact command line is in the header
    assert re.search(r"torch \d+\.\d+", text) and "torch threads: 1" in text

    # Section 1 at the cpu profile's size: the models as that profile trains them (x1/4, 10 classes), against
    # hand-written references with the same parameter count
    refs = table_rows(text, "1.")
    assert [(r[0], r[1], r[2]) for r in refs] == [("`cpu` profile", "1", "ResNet-50 (`resnet50`)"),
                                                  ("`cpu` profile", "1", "ConvNeXt-T (`separate_downsampling`)")]
    assert [(r[3], r[5]) for r in refs] == [("1.49", "timm ResNet, widths 16/32/64/128"),
                                            ("1.81", "timm convnext_tiny")]
    for row in refs:
        positive(row[4]), positive(row[6]), positive(row[7])
        lo, hi = (positive(v) for v in row[8].split(".."))
        assert lo <= hi

    steps = table_rows(text, "2.")
    assert [r[1] for r in steps] == ["`resnet50`", "`separate_downsampling`"]
    for row in steps:
        positive(row[2]), positive(row[3])

    # Section 3: the recipe as the cpu profile trains it, then the paper's at the profile's width and at full width
    pipeline = table_rows(text, "3.")
    assert [(r[1], r[2]) for r in pipeline] == [("as the `cpu` profile trains it", "0.25"), ("the paper's", "0.25"),
                                                ("the paper's", "1")]
    assert "(resize and centre crop, flip, no RandAugment, erasing 0.005" in text  # what the cpu profile trains
    for row in pipeline:
        positive(row[4]), positive(row[5]), positive(row[6])
        assert ".." in row[7]

    # Section 4: each step at the gpu profile's sizes, with the epochs the profile's rules give it (the paper's
    # 300 : 90 at 100 modern epochs), and the seed's training time is the sum of the steps' epochs x 60k / img/s.
    folder = table_rows(text, "5.")
    assert [r[0] for r in folder] == ["modern", "original"]
    for row in folder:
        positive(row[2]), positive(row[3]), positive(row[4])
    cost = table_rows(text, "4.")
    assert [(r[1], r[2], r[3], r[6]) for r in cost] == [("`resnet50`", "1", "64", "30"),
                                                        ("`separate_downsampling`", "1", "64", "100")]
    # img/s is printed to 3 significant digits (or whole), so the check allows that rounding.
    minutes = [int(r[6]) * 60_000 / positive(r[7]) / 60 for r in cost]
    for row, expected in zip(cost, minutes):
        assert float(row[8]) == pytest.approx(expected, rel=0.006, abs=0.051)
    total = float(re.search(r"these 2 steps at the `gpu` profile, one run at a time: \*\*([\d.]+) min", text)[1])
    assert total == pytest.approx(sum(float(r[8]) for r in cost), abs=0.11)


@pytest.mark.slow
def test_a_chosen_section_is_written_to_its_own_file(tmp_path):
    """--sections 4 writes <device>-sections-4.md and leaves the whole report (<device>.md) alone; without
    --profile it costs the `cpu` profile on a CPU."""
    path = bench.main(["--quick", "--threads", "1", "--steps", "resnet50", "--sections", "4", "--out", str(tmp_path)])
    assert path == tmp_path / "cpu-sections-4.md"
    text = path.read_text()
    assert "## 4. What one seed of the `cpu` profile's roadmap costs here" in text
    assert "## 1." not in text and "## 2." not in text and "## 3." not in text
    assert [r[6] for r in table_rows(text, "4.")] == ["6"]  # the cpu profile's fixed 6 epochs
    assert [p.name for p in tmp_path.iterdir()] == ["cpu-sections-4.md"]


@pytest.mark.slow
def test_a_profiles_training_subset_is_what_its_seed_costs(tmp_path):
    """The smoke profile trains 256 images an epoch (train_subset), not the whole 60k."""
    text = bench.main(["--quick", "--threads", "1", "--steps", "resnet50", "--profile", "smoke", "--sections", "4",
                       "--out", str(tmp_path)]).read_text()
    assert "(256 training images, 10 classes)" in text
    (row,) = table_rows(text, "4.")
    assert row[6] == "2"  # the smoke profile's epochs
    assert float(row[8]) == pytest.approx(2 * 256 / positive(row[7]) / 60, rel=0.006, abs=0.051)


@pytest.mark.parametrize("argv, message", [
    (["--profile", "laptop"], "unknown --profile 'laptop'; known profiles: cpu, gpu, imagenet, smoke"),
    (["--sizes", "cpu,7"], "--sizes takes profile names (cpu, gpu, imagenet, smoke) and resolutions in px (>= 8) "
                           "separated by commas, got 7"),
    (["--sections", "6"], "--sections takes numbers 1-5 separated by commas, got '6'"),
    (["--sections", "one"], "--sections takes numbers 1-5 separated by commas, got 'one'"),
])
def test_bad_profile_or_section_is_rejected_before_any_work(tmp_path, argv, message):
    with pytest.raises(SystemExit, match=re.escape(message)):
        bench.main(["--quick", *argv, "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())


def test_bad_step_name_is_rejected(tmp_path):
    with pytest.raises(SystemExit, match="unknown step 'nope'"):
        bench.main(["--quick", "--steps", "nope", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())  # nothing written
