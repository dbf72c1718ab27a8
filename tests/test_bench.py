"""The training-throughput benchmark runs end to end and writes a complete report.

Only the report's shape is checked: speed targets belong in the benchmark's own output, never in a unit
test (timings on a shared machine are noise at this size).
"""

import re

import pytest

from modernize import bench


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
                       "--out", str(out)])
    assert path == out / "cpu.md"
    text = path.read_text()
    assert "python -m modernize.bench --quick" in text  # the exact command line is in the header
    assert re.search(r"torch \d+\.\d+", text) and "torch threads: 1" in text

    refs = table_rows(text, "1.")
    assert [r[0] for r in refs] == ["ResNet-50 (`resnet50`)", "ConvNeXt-T (`separate_downsampling`)"]
    for row in refs:
        if "skipped" in row[4]:  # timm is a test dependency, but say so rather than fail if it is absent
            continue
        positive(row[1]), positive(row[3]), positive(row[4])
        lo, hi = (positive(v) for v in row[5].split(".."))
        assert lo <= hi

    steps = table_rows(text, "2.")
    assert [r[1] for r in steps] == ["`resnet50`", "`separate_downsampling`"]
    for row in steps:
        positive(row[2]), positive(row[3])

    pipeline = table_rows(text, "3.")
    assert [r[1] for r in pipeline] == ["0.25", "1"]  # the cpu profile's width, then full width
    for row in pipeline:
        positive(row[3]), positive(row[4]), positive(row[5])
        assert ".." in row[6]


def test_bad_step_name_is_rejected(tmp_path):
    with pytest.raises(SystemExit, match="unknown step 'nope'"):
        bench.main(["--quick", "--steps", "nope", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())  # nothing written
