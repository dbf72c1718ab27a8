"""One self-contained HTML page of this project's results: it opens from a file in any browser, with no network.

    python -m modernize.report experiments/roadmap/cpu-fashion_mnist experiments/kernels/cpu-fashion_mnist \\
        experiments/ablate/cpu-fashion_mnist --out experiments/report/cpu-fashion_mnist.html      # = make report

Each argument is a result folder (what modernize.tabulate or modernize.ablate wrote: roadmap.csv, the kernel sweep's
roadmap.csv, or ablation.csv) or a sweep folder (experiments/runs/<sweep>); folders that do not exist are skipped, so
`make report` shows whatever has been run. A result folder experiments/<kind>/<name> is paired with its runs,
<runs>/<kind>-<name> (the Makefile's naming; --runs, default the experiments/runs beside it), which give the
learning curves (metrics.jsonl, mean ± std over seeds) and the exact command that reproduces the section (profile,
data, seeds and every setting that differs from the named profile and data configs, read from the runs'
config.yaml). The page has the roadmap table and figure with the fidelity line, the learning curves, the kernel
sweep and the ablation matrix. The page is rendered by jinja2 (templates/report.html.j2, every value escaped);
tables are rendered from the CSVs: every number shown sits in an element whose
data-col names its CSV column, in a row whose data-key is the row's first CSV field (tests/test_report.py checks
them against the CSVs in a real browser).
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from .ablation import ABLATION, ABLATION_RUNS
from .peers_table import PEERS
from .columns import Column, Page, Table
from .figures import learning_curves_png
from .pooled import pooled_curves
from .reproduce import commands
from .roadmap_table import ROADMAP, order_key
from ..training.runs import metrics, run_folders
from ..training.sweeps import KINDS
from ..design.roadmap import roadmap_first

TITLES = {"roadmap": "The roadmap", "kernels": "The kernel sweep", "ablate": "The ablation matrix",
          "peers": "The paper's comparisons (Tables 1 and 2)"}
FIGURES = {"roadmap": ("roadmap.png", "roadmap figure"), "kernels": ("roadmap.png", "kernel sweep"),
           "ablate": ("ablation.png", "ablation matrix"), "peers": ("peers.png", "ConvNeXt beside its peers")}
TABLES = {"roadmap": ("roadmap.csv", ROADMAP), "kernels": ("roadmap.csv", ROADMAP),
          "ablate": ("ablation.csv", ABLATION), "peers": ("peers.csv", PEERS)}
SUMMARY_LINES = {"roadmap": "fidelity.csv", "kernels": "trend.csv"}
# the last epoch of each label's pooled learning curve (modernize.results.pooled.pooled_curves)
CURVES = Table((
    Column("step", page=True, key="label"),  # the page's field names are the CSVs': a label is "step"
    Column("epoch", page="epochs"),
    Column("seeds", page=True),
    Column("val_top1_mean", page=Page("final val top-1", ("val_top1_mean", "val_top1_std"), ".2f", ("", " ± ", ""))),
    Column("train_loss_mean", page=Page("final train loss", ("train_loss_mean", "train_loss_std"), ".3f",
                                        ("", " ± ", ""))),
), key="step")


# ------------------------------------------------------------------------------------------------ inputs
@dataclass
class Source:
    """A result folder and the sweep folder of its runs (either may be absent)."""

    kind: str  # roadmap | kernels | ablate | sweep
    results: Path | None = None
    sweep: Path | None = None


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def kind_of(path: Path) -> str | None:
    """What a folder holds, by the files tabulate and ablate write: a kernel sweep's table has trend.csv beside it, a
    roadmap's fidelity.csv."""
    if (path / "ablation.csv").exists():
        return "ablate"
    if (path / "peers.csv").exists():
        return "peers"
    if (path / "roadmap.csv").exists():
        return "kernels" if (path / "trend.csv").exists() else "roadmap"
    if path.is_dir() and any((run / name).exists() for run in path.iterdir() if run.is_dir()
                             for name in ("summary.json", "metrics.jsonl", "config.yaml")):
        return "sweep"
    return None


def find_sources(paths: Sequence[Path], runs_root: Path | None,
                 roadmap_sweep: Path | None = None) -> tuple[list[Source], list[str]]:
    """The result folders (each with its sweep folder: by convention <runs>/<kind>-<folder name>, or for the roadmap
    `roadmap_sweep`, a sweep of another name) and the skipped paths, with why."""
    sweeps = {p.name: p for p in paths if p.is_dir() and kind_of(p) == "sweep"}
    sources, skipped, used = [], [], set()
    for path in paths:
        kind = kind_of(path) if path.is_dir() else None
        if kind is None:
            skipped.append(f"{path}: {'no results there' if path.is_dir() else 'not found'}")
        elif kind != "sweep":
            name = f"{kind}-{path.name}"
            roots = [r for r in (runs_root, path.parent.parent / "runs") if r is not None]
            sweep = sweeps.get(name) or next((r / name for r in roots if (r / name).is_dir()), None)
            if kind == "roadmap" and roadmap_sweep is not None:
                sweep = roadmap_sweep if roadmap_sweep.is_dir() else None
            used.add(name)
            sources.append(Source(kind, path, sweep))
    # a sweep folder given alone: a roadmap (or kernel sweep) without a table, curves and command only
    for name, path in sweeps.items():
        if name not in used:
            kind = next((k for k in KINDS if name.startswith(f"{k}-")), "roadmap")
            sources.append(Source(kind, None, path))
    sources.sort(key=lambda s: KINDS.index(s.kind))
    return sources, skipped


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def table_view(table_id: str, table: Table, csv_rows: list[dict[str, str]], csv_path: Path | None = None) -> dict:
    """What the template needs of a table: its id, CSV file, key, headers and rows (Table.page_rows)."""
    return {"id": table_id, "csv": str(csv_path) if csv_path else None, "key": table.key,
            "headers": [page.header for page in table.page_columns()], "rows": table.page_rows(csv_rows)}


def csv_table_view(table_id: str, table: Table, path: Path) -> dict:
    return table_view(table_id, table, read_csv(path), path)


def as_page_row(table: Table, row: dict) -> dict[str, str]:
    """An in-memory row as the page reads a CSV row: text under the CSV's field names."""
    renamed = {c.row_key: c.name for c in table.columns if c.name and c.row_key != c.name}
    return {renamed.get(k, k): str(v) for k, v in row.items()}


def curves_view(runs: dict[str, list[Path]], name: str, sid: str) -> dict | None:
    """The learning curves of a sweep's runs (mean ± std over seeds): their figure, and a table of each label's last
    epoch; None where no run has metrics."""
    per_label = {label: [metrics(run) for run in runs[label]] for label in sorted(runs, key=order_key)}
    points = pooled_curves({label: seeds for label, seeds in per_label.items() if any(seeds)})
    if not points:
        return None
    last = [p for i, p in enumerate(points) if i + 1 == len(points) or points[i + 1]["label"] != p["label"]]
    return {"figure": {"id": f"{sid}-curves", "alt": f"{name}: learning curves",
                       "src": png_data_uri(learning_curves_png(points, name))},
            "table": table_view(f"{sid}-curves-table", CURVES, [as_page_row(CURVES, p) for p in last])}


def section_view(source: Source, index: int) -> dict[str, Any]:
    """What the template shows of one source: its summary line, table, figure, runs, curves and commands."""
    sid, name = f"{source.kind}-{index}", (source.results or source.sweep).name
    runs = run_folders(source.sweep) if source.sweep else {}
    view: dict[str, Any] = {"id": sid, "kind": source.kind, "name": name, "title": TITLES[source.kind],
                            "sources": ", ".join(str(p) for p in (source.results, source.sweep) if p),
                            "no_runs": source.sweep is None,
                            "commands": "\n".join(commands(source.kind, source.results, source.sweep,
                                                            roadmap_first(list(runs))))}
    results, summary = source.results, SUMMARY_LINES.get(source.kind)
    if summary and results and (results / summary).exists():
        view["summary"] = {"csv": str(results / summary), "line": read_csv(results / summary)[0]["line"]}
    if results:
        csv_name, table = TABLES[source.kind]
        figure_name, alt = FIGURES[source.kind]
        view["table"] = csv_table_view(f"{sid}-table", table, results / csv_name)
        view["figure"] = {"id": f"{sid}-figure", "alt": f"{name}: {alt}",
                          "src": png_data_uri((results / figure_name).read_bytes())}
    if source.kind == "ablate" and results:
        view["intro"] = True  # the template's paragraph on what the matrix measures
        if (results / "ablation_runs.csv").exists():
            view["runs_table"] = csv_table_view(f"{sid}-runs", ABLATION_RUNS, results / "ablation_runs.csv")
    if runs and source.kind in ("roadmap", "ablate"):
        view["curves"] = curves_view(runs, name, sid)
    return view


def render(sources: Sequence[Source], skipped: Sequence[str], command: str) -> str:
    """The page (templates/report.html.j2): every value escaped as html.escape does, once, as it is written."""
    import jinja2
    from markupsafe import Markup

    def escaped(value: Any) -> Markup:
        return value if isinstance(value, Markup) else Markup(html.escape(str(value)))

    env = jinja2.Environment(loader=jinja2.PackageLoader("modernize.results", "templates"), autoescape=True,
                             finalize=escaped, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template("report.html.j2").render(
        command=command, skipped="; ".join(skipped),
        sections=[section_view(source, i) for i, source in enumerate(sources)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modernize.report", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="result folders (experiments/<roadmap|kernels|ablate>/"
                                                           "<profile>-<data>) and/or sweep folders")
    parser.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    parser.add_argument("--runs", type=Path, help="where sweep folders are (default: the runs/ beside each result "
                                                  "folder's kind folder, i.e. experiments/runs)")
    parser.add_argument("--roadmap-sweep", type=Path, help="the sweep folder the roadmap table was made from, where "
                        "it is not <runs>/roadmap-<profile>-<data> (make report SWEEP=<name>)")
    args = parser.parse_args(argv)
    sources, skipped = find_sources(args.dirs, args.runs, args.roadmap_sweep)
    if not sources:
        print("error: nothing to report: " + "; ".join(skipped), file=sys.stderr)
        return 2
    command = "python -m modernize.report " + " ".join(shlex.quote(str(d)) for d in args.dirs) + \
        (f" --runs {shlex.quote(str(args.runs))}" if args.runs else "") + \
        (f" --roadmap-sweep {shlex.quote(str(args.roadmap_sweep))}" if args.roadmap_sweep else "") + \
        f" --out {shlex.quote(str(args.out))}"
    atomic_write_text(args.out, render(sources, skipped, command))
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    print(f"wrote {args.out} ({', '.join(f'{s.kind}: {(s.results or s.sweep).name}' for s in sources)})")
    return 0
