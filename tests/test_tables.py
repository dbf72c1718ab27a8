"""Tables declared once (modernize.columns): the markdown and the CSV of a table come from one column list."""

import csv
import io
import re
from pathlib import Path

import pytest

from modernize.results import flops_table
from modernize.results.columns import Column, Table, markdown_columns
from modernize.results.roadmap_table import ROADMAP, roadmap_rows

ROOT = Path(__file__).resolve().parents[1]


def read_markdown(text):
    """(headers, rows of cells) of the first pipe table in text; an escaped \\| stays inside its cell."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    split = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    assert all(re.fullmatch(r":?-+:?", c) for c in split[1])
    return split[0], split[2:]


def read_csv(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def _summary(step, top1, seed):
    return {"status": "ok", "step": step, "seed": seed, "final_top1": top1, "params": 25_557_032,
            "gflops_224": 4.1114, "params_run": 1_486_106, "gflops_run": 0.00581, "train_images_per_s": 1139.07,
            "infer_images_per_s": 3098.07, "wall_time_s": 334.44}


@pytest.fixture
def roadmap_table():
    runs = {"resnet50": [_summary("resnet50", v, i) for i, v in enumerate([85.31, 86.12, 85.94])],
            "recipe": [_summary("recipe", v, i) for i, v in enumerate([88.71, 89.02, 89.10])],
            "patchify": [_summary("patchify", 88.52, 0),
                         {"status": "failed", "step": "patchify", "error": "RunError: a | b"}],
            "depthwise": [{"status": "failed", "step": "depthwise", "error": "RunError: x"}],
            "resnextify": [{"status": "unfinished", "step": "resnextify"}]}
    return roadmap_rows(runs)


def test_roadmap_markdown_and_csv_have_the_declared_columns_in_the_same_order(roadmap_table):
    md_headers, md_rows = read_markdown(ROADMAP.markdown(roadmap_table))
    csv_header, csv_rows = read_csv(ROADMAP.csv(roadmap_table))
    assert md_headers == [c.header for c in markdown_columns(ROADMAP.columns)]
    assert csv_header == ROADMAP.csv_names
    # every markdown column is a CSV column, and they come in the same order in both
    backing = [c.name for c in markdown_columns(ROADMAP.columns)]
    assert None not in backing
    assert [csv_header.index(name) for name in backing] == sorted(csv_header.index(name) for name in backing)
    assert len(md_rows) == len(csv_rows) == len(roadmap_table)
    assert all(len(row) == len(md_headers) for row in md_rows)  # the "|" in an error is escaped


def test_a_roadmap_cell_in_the_markdown_is_the_csv_value_formatted(roadmap_table):
    md_headers, md_rows = read_markdown(ROADMAP.markdown(roadmap_table))
    csv_header, csv_rows = read_csv(ROADMAP.csv(roadmap_table))
    checked = 0
    for md_row, csv_row in zip(md_rows, csv_rows):
        values = dict(zip(csv_header, csv_row))
        for column, cell in zip(markdown_columns(ROADMAP.columns), md_row):
            if not isinstance(column.fmt, str) or not column.fmt or values[column.name] == "":
                continue
            decimals = int(re.search(r"\.(\d)f", column.fmt).group(1))
            assert float(cell.replace(",", "")) == pytest.approx(float(values[column.name]), abs=0.5 * 10**-decimals)
            checked += 1
        assert md_row[0] == values["step"] and md_row[1] == values["n"]
    assert checked > 20
    rows = {r[0]: dict(zip(md_headers, r)) for r in md_rows}
    csv_by_step = {r[0]: dict(zip(csv_header, r)) for r in csv_rows}
    assert rows["recipe"]["change"] == "+3.15" and csv_by_step["recipe"]["delta"] == "3.1533"
    assert rows["recipe"]["paper top-1"] == "78.8" == csv_by_step["recipe"]["paper_top1"]
    assert rows["recipe"]["top-1 (ours)"] == "88.94 ± 0.21"
    assert rows["recipe"]["GFLOPs run"] == "5.8M" and csv_by_step["recipe"]["gflops_run"] == "0.0058"
    assert rows["patchify"]["top-1 (ours)"] == "88.52 (1 failed)" and rows["patchify"]["significant (p)"] == \
        "not tested"
    assert csv_by_step["patchify"]["error"] == "RunError: a | b"
    assert rows["depthwise"]["top-1 (ours)"] == "failed: RunError: x" and rows["depthwise"]["n"] == "0"
    assert rows["resnextify"]["top-1 (ours)"] == "unfinished" and rows["resnextify"]["paper top-1"] == "80.5"


def test_flops_markdown_and_csv_come_from_one_column_list():
    rows = [{"group": "roadmap", "name": "resnet50", "params": 25_557_032, "gflops_224": 4.11144, "paper_gflops": 4.1,
             "paper_top1": 76.1},
            {"group": "isotropic", "name": "convnext_iso_s", "params": 22_271_848, "gflops_224": 4.2889,
             "paper_gflops": 4.3, "paper_top1": 79.7, "paper_params": 22.0 * 10**6}]
    md_headers, md_rows = read_markdown(flops_table.FLOPS.markdown(rows))
    text = flops_table.FLOPS.csv(rows, "\r\n")
    csv_header, csv_rows = read_csv(text)
    assert md_headers == [c.header for c in markdown_columns(flops_table.FLOPS.columns)]
    assert csv_header == flops_table.FLOPS.csv_names
    assert text.endswith("\r\n")  # as the committed experiments/flops/roadmap.csv
    first, second = (dict(zip(md_headers, r)) for r in md_rows)
    assert first == {"group": "roadmap", "model": "resnet50", "params": "25,557,032", "GFLOPs (ours)": "4.11",
                     "paper params": "", "GFLOPs (paper)": "4.1", "diff": "+0.01", "paper top-1": "76.1"}
    assert second["paper params"] == "22,000,000" and second["diff"] == "-0.01"
    assert csv_rows[0] == ["roadmap", "resnet50", "25557032", "4.1114", "", "4.1", "76.1"]


def test_a_column_is_csv_only_markdown_only_or_both():
    columns = (Column("a", "A", ".1f"), Column("b"), Column(None, "a+b", lambda r: str(r["a"] + r["b"])))
    rows = [{"a": 1.23456, "b": 2}, {"a": None, "b": 3}]
    assert read_markdown(Table(columns[:2], key="a").markdown(rows)) == (["A"], [["1.2"], [""]])
    assert read_markdown(Table(columns, key="a").markdown(rows[:1])) == (["A", "a+b"], [["1.2", "3.23456"]])
    assert Table(columns, key="a").csv(rows) == "a,b\n1.2346,2\n,3\n"


def test_the_readme_table_is_copied_between_its_markers_and_nowhere_else(tmp_path):
    from modernize.results.publish import fill_readme_block

    readme = tmp_path / "README.md"
    source = tmp_path / "roadmap.md"
    readme.write_text(f"# title\n\n<!-- roadmap-table: {source} -->\nold table\n<!-- /roadmap-table -->\n\nafter\n")
    fill_readme_block(readme, source, ["**Fidelity**", "", "| a |", "|---|", "| 1 |"])
    assert readme.read_text() == (f"# title\n\n<!-- roadmap-table: {source} -->\n**Fidelity**\n\n| a |\n|---|\n"
                                  "| 1 |\n<!-- /roadmap-table -->\n\nafter\n")
    (tmp_path / "OTHER.md").write_text("no markers\n")
    with pytest.raises(SystemExit, match="no '<!-- roadmap-table"):
        fill_readme_block(tmp_path / "OTHER.md", source, ["x"])


def test_the_committed_flops_table_is_what_make_flops_renders_from_its_csv():
    """`make flops` leaves a clean tree: experiments/flops/roadmap.md is the committed CSV's rows through the one
    column list (the counting itself, minutes of fvcore, is what test_flops checks step by step)."""
    folder = ROOT / "experiments" / "flops"
    with open(folder / "roadmap.csv", newline="") as f:
        keys = {c.name: c.row_key for c in flops_table.FLOPS.columns if c.name}  # a CSV field -> the row's key
        rows = [{keys[k]: csv_value(v) if k not in ("group", "name") else v for k, v in row.items()}
                for row in csv.DictReader(f)]
    assert (folder / "roadmap.md").read_text() == flops_table.page(rows)
    with open(folder / "roadmap.csv", newline="") as f:
        assert f.read() == flops_table.FLOPS.csv(rows, "\r\n")


def csv_value(text: str) -> int | float | None:
    """A CSV number as the table held it: int or float as written, None for an empty field."""
    if not text:
        return None
    return float(text) if "." in text else int(text)


def test_the_learning_curve_figure_keeps_its_titles_apart():
    """The ablation's curves (its longest labels, four panels a row): the figure's title clears every panel title,
    and neighbouring panel titles do not run into each other."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from modernize.results.ablation import labels
    from modernize.results.figures import learning_curves_figure

    longest = sorted(labels(), key=len)[-8:]
    points = [{"label": label, "epoch": epoch, "seeds": 3, "val_top1_mean": 80.0 + epoch, "val_top1_std": 0.5,
               "train_loss_mean": 1.0 / epoch, "train_loss_std": 0.1} for label in longest for epoch in (1, 2, 3)]
    fig = learning_curves_figure(points, "ablate-cpu-fashion_mnist")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    suptitle = fig._suptitle.get_window_extent(renderer)
    panels = [ax for ax in fig.axes if ax.get_title()]
    titles = [ax.title.get_window_extent(renderer) for ax in panels]
    assert len(titles) == len(longest)
    assert not any(suptitle.overlaps(t) for t in titles)
    assert not any(a.overlaps(b) for i, a in enumerate(titles) for b in titles[i + 1:])
    assert all(t.x0 >= 0 and t.x1 <= fig.bbox.width for t in titles)  # none cut off at the edges
    plt.close(fig)


def test_the_committed_init_comparison_is_what_modernize_compare_writes_from_the_committed_runs(tmp_path,
                                                                                                  monkeypatch):
    """docs/recipe.md's initialisation table: re-made from the committed runs, byte for byte."""
    from modernize.results import compare

    monkeypatch.chdir(ROOT)
    committed = Path("experiments/init/cpu-fashion_mnist")
    assert compare.main(["experiments/runs/init-trunc_normal-cpu-fashion_mnist",
                         "experiments/runs/init-kaiming_zero_last-cpu-fashion_mnist", "--label", "recipe",
                         "--out", str(tmp_path)]) == 0
    for name in ("compare.md", "compare.csv"):
        assert (tmp_path / name).read_text() == (committed / name).read_text()
    rows = list(csv.DictReader(io.StringIO((committed / "compare.csv").read_text())))
    assert [r["seed"] for r in rows] == ["0", "1", "2", "mean"] and rows[-1]["significant"] == "False"


def test_compare_refuses_a_label_a_sweep_lacks_and_lists_the_labels_it_has(tmp_path, capsys):
    from modernize.results import compare

    (tmp_path / "empty").mkdir()
    committed = str(ROOT / "experiments/runs/init-trunc_normal-cpu-fashion_mnist")
    assert compare.main([committed, str(tmp_path / "empty"), "--label", "recipe"]) == 2
    assert f"--label recipe has no run in {tmp_path / 'empty'} (its labels: none)" in capsys.readouterr().err
    assert compare.main([committed, committed, "--label", "recipes"]) == 2
    err = capsys.readouterr().err
    assert "(its labels: recipe)" in err and err.count("\n") == 1


def test_compare_help_says_what_it_does_in_whole_sentences():
    from modernize.results import compare

    description = compare.compare_arguments().description
    assert description.endswith("(modernize.results.stats, the level every table uses).")
