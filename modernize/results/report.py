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
sweep and the ablation matrix. Tables are rendered from the CSVs: every number shown sits in an element whose
data-col names its CSV column, in a row whose data-key is the row's first CSV field (tests/test_report.py checks
them against the CSVs in a real browser).
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import shlex
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..design.config import CONF_DIR
from ..io import atomic_write_text
from ..design.roadmap import STEPS, roadmap_first

KINDS = ("roadmap", "kernels", "ablate")
# settings of a run's config.yaml that say where it is written or how it is logged, not what it computes
NOT_RESULTS = ("train.workers", "train.log_every_steps", "train.resume", "train.checkpoint_every_steps",
               "train.throughput_batch", "logger")


# ------------------------------------------------------------------------------------------------ inputs
@dataclass
class Source:
    """A result folder and the sweep folder of its runs (either may be absent)."""

    kind: str  # roadmap | kernels | ablate | sweep
    results: Path | None = None
    sweep: Path | None = None
    notes: list[str] = field(default_factory=list)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def kind_of(path: Path) -> str | None:
    if (path / "ablation.csv").exists():
        return "ablate"
    if (path / "roadmap.csv").exists():
        return "kernels" if any(" k=" in r["step"] for r in read_csv(path / "roadmap.csv")) else "roadmap"
    if path.is_dir() and any((run / name).exists() for run in path.iterdir() if run.is_dir()
                             for name in ("summary.json", "metrics.jsonl", "config.yaml")):
        return "sweep"
    return None


def find_sources(paths: Sequence[Path], runs_root: Path | None) -> tuple[list[Source], list[str]]:
    """The result folders (each with its sweep folder) and the skipped paths, with why."""
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
            used.add(name)
            sources.append(Source(kind, path, sweep))
    # a sweep folder given alone: a roadmap (or kernel sweep) without a table, curves and command only
    for name, path in sweeps.items():
        if name not in used:
            kind = next((k for k in KINDS if name.startswith(f"{k}-")), "roadmap")
            sources.append(Source(kind, None, path))
    sources.sort(key=lambda s: KINDS.index(s.kind))
    return sources, skipped


def runs_of(sweep: Path) -> dict[str, list[Path]]:
    """{label: [run folder per seed]} of a sweep folder (run folders are <label>-seed<N>)."""
    out: dict[str, list[Path]] = {}
    for run in sorted(p for p in sweep.iterdir() if p.is_dir() and "-seed" in p.name):
        out.setdefault(run.name.rsplit("-seed", 1)[0], []).append(run)
    return out


# ------------------------------------------------------------------------------------------------ commands
def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if v is None:
        return "null"
    if isinstance(v, list):
        return "[" + ",".join(_value(x) for x in v) + "]"
    return str(v)


def settings(sweep: Path) -> dict[str, Any] | None:
    """What the runs of a sweep share: profile, data, seeds, out_root, sweep_name, and the overrides (key=value)
    of every setting that differs from conf/profile/<profile>.yaml, conf/data/<data>.yaml and conf/config.yaml."""
    configs = [yaml.safe_load((run / "config.yaml").read_text()) for runs in runs_of(sweep).values() for run in runs
               if (run / "config.yaml").exists()]
    if not configs:
        return None
    first = configs[0]
    profile, data = first["profile"]["name"], first["data"]["name"]
    overrides: dict[str, str] = {}
    defaults = {
        "profile": _load_yaml(CONF_DIR / "profile" / f"{profile}.yaml"),
        "data": _load_yaml(CONF_DIR / "data" / f"{data}.yaml"),
        "train": (_load_yaml(CONF_DIR / "config.yaml") or {}).get("train", {}),
    }
    for group, default in defaults.items():
        if default is None:
            continue
        ours, theirs = _flat(first.get(group, {}), f"{group}."), _flat(default, f"{group}.")
        for key, value in ours.items():
            if key in theirs and theirs[key] != value and not key.startswith(NOT_RESULTS):
                overrides[key] = _value(value)
    seeds = sorted({c["seed"] for c in configs})
    return {"profile": profile, "data": data, "seeds": ",".join(map(str, seeds)), "out_root": first["out_root"],
            "sweep_name": first["sweep_name"], "overrides": [f"{k}={v}" for k, v in overrides.items()],
            "kernels": sorted({c["model"]["block"]["kernel_size"] for c in configs})}


def _load_yaml(path: Path) -> dict | None:
    return yaml.safe_load(path.read_text()) if path.exists() else None


def commands(source: Source, labels: Sequence[str]) -> list[str]:
    """The commands that reproduce a section: the make target where it is the same, then what it runs."""
    s = settings(source.sweep) if source.sweep else None
    if s is None:
        return [f"# no runs found for {source.results}: the commands need its sweep folder (--runs)"]
    common = [f"profile={s['profile']}", f"data={s['data']}", f"out_root={s['out_root']}",
              f"sweep_name={s['sweep_name']}", *s["overrides"]]
    sweep_dir = f"{s['out_root']}/{s['sweep_name']}"
    results = str(source.results) if source.results else f"experiments/{source.kind}/{s['profile']}-{s['data']}"
    make_vars = [f"PROFILE={s['profile']}", f"DATA={s['data']}", f"SEEDS={s['seeds']}"]
    if s["overrides"]:
        make_vars.append(f"ARGS={shlex.quote(' '.join(s['overrides']))}")
    conventional = s["sweep_name"] == f"{source.kind}-{s['profile']}-{s['data']}"
    lines: list[str] = []
    if source.kind == "roadmap":
        steps = [label for label in labels if label in STEPS]
        extra = [label for label in labels if label not in STEPS]
        if extra:
            make_vars.append(f"EXTRA={shlex.quote(' '.join(extra))}")
        if s["sweep_name"] != f"roadmap-{s['profile']}-{s['data']}":
            make_vars.append(f"SWEEP={s['sweep_name']}")
        if s["out_root"] == "experiments/runs" and results == f"experiments/roadmap/{s['profile']}-{s['data']}" \
                and steps == list(STEPS):
            lines += [f"make roadmap {' '.join(make_vars)}", "# which runs:"]
        if steps:
            lines.append(f"python run.py -m seed={s['seeds']} +step={','.join(steps)} {' '.join(common)}")
        if extra:
            lines.append(f"python run.py -m seed={s['seeds']} \"+delta=$(python -m modernize.sweep --delta-lists "
                         f"{' '.join(extra)})\" {' '.join(common)}")
        lines.append(f"python -m modernize.tabulate {sweep_dir} --out {results}")
    elif source.kind == "kernels":
        if conventional and s["out_root"] == "experiments/runs" and results.startswith("experiments/kernels/"):
            lines += [f"make kernels {' '.join(make_vars)}", "# which runs:"]
        lines.append(f"python run.py -m +step=kernel_size model.block.kernel_size={','.join(map(str, s['kernels']))} "
                     f"seed={s['seeds']} {' '.join(common)} "
                     f"hydra.sweep.subdir='k${{model.block.kernel_size}}-seed${{seed}}'")
        lines.append(f"python -m modernize.tabulate {sweep_dir} --by-kernel --out {results}")
    else:
        from . import ablate

        present = [d for d in ablate.DELTAS if all(label in labels for label in
                                                   [c.run_label for c in ablate.comparisons([d])])]
        subset = [] if present == list(ablate.DELTAS) else present
        if subset:
            make_vars.append(f"ABLATE_DELTAS={shlex.quote(' '.join(subset))}")
        if conventional:
            if s["out_root"] != "experiments/runs":
                make_vars.append(f"RUNS={s['out_root']}")
            results_root = str(Path(results).parent.parent)
            if results_root != "experiments":
                make_vars.append(f"RESULTS={results_root}")
            lines += [f"make ablate {' '.join(make_vars)}", "# which runs:"]
        deltas = f" --deltas {' '.join(subset)}" if subset else ""
        lines.append(f"python run.py -m seed={s['seeds']} "
                     f"\"+delta=$(python -m modernize.ablate --delta-lists{deltas})\" {' '.join(common)}")
        lines.append(f"python -m modernize.ablate {sweep_dir} --out {results}")
    return lines


# ------------------------------------------------------------------------------------------------ figures
def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def learning_curves(runs: dict[str, list[Path]], title: str) -> tuple[bytes, list[dict]] | None:
    """A grid of per-label panels: validation top-1 (mean ± std over seeds) and training loss per epoch. Returns the
    PNG and the plotted numbers (one row per label and epoch)."""
    from .tabulate import order_key

    curves: dict[str, dict[int, list[dict]]] = {}
    for label, dirs in runs.items():
        for run in dirs:
            path = run / "metrics.jsonl"
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    curves.setdefault(label, {}).setdefault(int(row["epoch"]), []).append(row)
    if not curves:
        return None
    points = []
    for label in sorted(curves, key=order_key):
        for epoch in sorted(curves[label]):
            rows = curves[label][epoch]
            top1 = [r["val_top1"] for r in rows]
            loss = [r["train_loss"] for r in rows]
            points.append({"step": label, "epoch": epoch, "seeds": len(rows), "val_top1_mean": statistics.mean(top1),
                           "val_top1_std": statistics.stdev(top1) if len(top1) > 1 else 0.0,
                           "train_loss_mean": statistics.mean(loss),
                           "train_loss_std": statistics.stdev(loss) if len(loss) > 1 else 0.0})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(p["step"] for p in points))
    ncols = min(4, len(labels))
    nrows = -(-len(labels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 2.5 * nrows + 0.8), squeeze=False)
    for ax, label in zip(axes.flat, labels):
        mine = [p for p in points if p["step"] == label]
        epochs = [p["epoch"] for p in mine]
        mean = [p["val_top1_mean"] for p in mine]
        std = [p["val_top1_std"] for p in mine]
        ax.plot(epochs, mean, "o-", color="tab:blue", markersize=3, label="val top-1")
        ax.fill_between(epochs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color="tab:blue", alpha=0.25)
        ax.set_title(f"{label} (n={max(p['seeds'] for p in mine)})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylabel("val top-1 (%)", fontsize=7, color="tab:blue")
        loss_ax = ax.twinx()
        loss_mean = [p["train_loss_mean"] for p in mine]
        loss_std = [p["train_loss_std"] for p in mine]
        loss_ax.plot(epochs, loss_mean, "--", color="tab:gray", linewidth=1)
        loss_ax.fill_between(epochs, [m - s for m, s in zip(loss_mean, loss_std)],
                             [m + s for m, s in zip(loss_mean, loss_std)], color="tab:gray", alpha=0.15)
        loss_ax.tick_params(labelsize=7, colors="tab:gray")
        ax.set_xlabel("epoch", fontsize=7)
    for ax in list(axes.flat)[len(labels):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: validation top-1 (blue, mean ± std over seeds) and training loss (gray, dashed)",
                 fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png")
    plt.close(fig)
    return buf.getvalue(), points


# ------------------------------------------------------------------------------------------------ tables
@dataclass(frozen=True)
class Cell:
    """One column of an HTML table: CSV fields shown with a format, inside a template ('{0} ± {1}')."""

    header: str
    fields: tuple[str, ...]
    fmt: str = ""  # format spec for numbers; "" shows the CSV text
    template: str = "{0}"


def _shown(value: str, fmt: str) -> str:
    if value == "":
        return ""
    if value in ("True", "False"):
        return "yes" if value == "True" else "no"
    if fmt:
        try:
            return format(float(value), fmt)
        except ValueError:
            return value
    return value


def html_table(table_id: str, rows: Sequence[dict[str, str]], cells: Sequence[Cell], key: str) -> str:
    head = "".join(f"<th>{html.escape(c.header)}</th>" for c in cells)
    body = []
    for row in rows:
        tds = []
        for c in cells:
            parts = [(name, _shown(row.get(name, ""), c.fmt)) for name in c.fields]
            if all(text == "" for _, text in parts):
                tds.append("<td></td>")
                continue
            spans = [f'<span data-col="{html.escape(name)}">{html.escape(text)}</span>' for name, text in parts]
            numeric = c.fmt and all(_is_number(text) for _, text in parts if text)
            tds.append(f'<td class="{"num" if numeric else "text"}">{c.template.format(*spans)}</td>')
        body.append(f'<tr data-key="{html.escape(row[key])}">{"".join(tds)}</tr>')
    return (f'<div class="scroll"><table id="{table_id}" data-key="{html.escape(key)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False


ROADMAP_CELLS = (
    Cell("step", ("step",)),
    Cell("n", ("n",)),
    Cell("top-1 (ours)", ("top1_mean", "top1_std"), ".2f", "{0} ± {1}"),
    Cell("change", ("delta",), "+.2f"),
    Cell("paper top-1", ("paper_top1",), ".1f"),
    Cell("paper change", ("paper_delta",), "+.1f"),
    Cell("same direction", ("agrees",)),
    Cell("significant", ("significant",)),
    Cell("p", ("p_value",), ".3f"),
    Cell("params", ("params",), ",.0f"),
    Cell("GFLOPs 224", ("gflops_224",), ".2f"),
    Cell("paper GFLOPs", ("paper_gflops",), ".1f"),
    Cell("failed", ("failed",)),
    Cell("unfinished", ("unfinished",)),
    Cell("error", ("error",)),
)
ABLATION_CELLS = (
    Cell("delta", ("delta",)),
    Cell("paper §", ("section",)),
    Cell("added alone: run", ("add_run",)),
    Cell("vs", ("add_reference",)),
    Cell("gain added alone", ("add_effect",), "+.2f"),
    Cell("95% CI", ("add_low", "add_high"), "+.2f", "[{0}, {1}]"),
    Cell("p", ("add_p",), ".3f"),
    Cell("significant", ("add_significant",)),
    Cell("status", ("add_status",)),
    Cell("removed from ConvNeXt-T: run", ("remove_run",)),
    Cell("gain in ConvNeXt-T", ("remove_effect",), "+.2f"),
    Cell("95% CI ", ("remove_low", "remove_high"), "+.2f", "[{0}, {1}]"),
    Cell("p ", ("remove_p",), ".3f"),
    Cell("significant ", ("remove_significant",)),
    Cell("status ", ("remove_status",)),
    Cell("paper step change", ("paper_change",), "+.1f"),
)
ABLATION_RUN_CELLS = (
    Cell("run", ("run",)),
    Cell("role", ("role",)),
    Cell("n", ("n",)),
    Cell("top-1", ("top1_mean", "top1_std"), ".2f", "{0} ± {1}"),
    Cell("params", ("params",), ",.0f"),
    Cell("GFLOPs 224", ("gflops_224",), ".2f"),
    Cell("failed", ("failed",)),
    Cell("unfinished", ("unfinished",)),
    Cell("error", ("error",)),
)
CURVE_CELLS = (
    Cell("step", ("step",)),
    Cell("epochs", ("epoch",)),
    Cell("seeds", ("seeds",)),
    Cell("final val top-1", ("val_top1_mean", "val_top1_std"), ".2f", "{0} ± {1}"),
    Cell("final train loss", ("train_loss_mean", "train_loss_std"), ".3f", "{0} ± {1}"),
)


# ------------------------------------------------------------------------------------------------ page
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1300px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.82em; margin: 1em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
img { max-width: 100%; height: auto; display: block; margin: 1em 0; border: 1px solid #eee; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: 0.85em; }
.fidelity { font-weight: bold; } .note { color: #666; font-size: 0.9em; }
"""


def figure(data: bytes, alt: str, fig_id: str) -> str:
    return f'<figure><img id="{fig_id}" alt="{html.escape(alt)}" src="{png_data_uri(data)}"></figure>'


def command_block(lines: Sequence[str], title: str = "Reproduce:") -> str:
    return f"<p>{html.escape(title)}</p><pre><code>" + html.escape("\n".join(lines)) + "</code></pre>"


def section_html(source: Source, index: int) -> list[str]:
    out: list[str] = []
    sid = f"{source.kind}-{index}"
    name = (source.results or source.sweep).name
    runs = runs_of(source.sweep) if source.sweep else {}
    labels = roadmap_first(list(runs))
    titles = {"roadmap": "The roadmap", "kernels": "The kernel sweep", "ablate": "The ablation matrix"}
    out.append(f'<section id="{sid}"><h2>{titles[source.kind]}: {html.escape(name)}</h2>')
    where = ", ".join(html.escape(str(p)) for p in (source.results, source.sweep) if p)
    out.append(f'<p class="note">From {where}.</p>')
    summary = {"roadmap": "fidelity.csv", "kernels": "trend.csv"}.get(source.kind)
    if summary and source.results and (source.results / summary).exists():
        line = read_csv(source.results / summary)[0]["line"]
        out.append(f'<p class="fidelity" id="{sid}-fidelity" data-csv="{html.escape(str(source.results / summary))}">'
                   f'<span data-col="line">{html.escape(line)}</span></p>')
    if source.kind == "roadmap" and source.results:
        out.append(_csv_table(f"{sid}-table", source.results / "roadmap.csv", ROADMAP_CELLS, "step"))
        out.append(figure((source.results / "roadmap.png").read_bytes(), f"{name}: roadmap figure", f"{sid}-figure"))
    elif source.kind == "kernels" and source.results:
        out.append(_csv_table(f"{sid}-table", source.results / "roadmap.csv", ROADMAP_CELLS, "step"))
        out.append(figure((source.results / "roadmap.png").read_bytes(), f"{name}: kernel sweep", f"{sid}-figure"))
    elif source.kind == "ablate" and source.results:
        out.append("<p>Each delta added alone to ResNet-50 with the modern recipe, and removed alone from ConvNeXt-T, "
                   "beside the paper's change at its roadmap step. A gain is (with the delta) − (without it) in top-1 "
                   "points, positive where the delta helps, with the 95% t-interval of the per-seed differences and a "
                   "paired t-test (p &lt; 0.05). A delta with prerequisites is added with them and compared with the "
                   "run that has only them; removing a delta removes the deltas that need it too (docs/ablation.md)."
                   "</p>")
        out.append(_csv_table(f"{sid}-table", source.results / "ablation.csv", ABLATION_CELLS, "delta"))
        out.append(figure((source.results / "ablation.png").read_bytes(), f"{name}: ablation matrix",
                          f"{sid}-figure"))
        if (source.results / "ablation_runs.csv").exists():
            out.append("<h3>Runs</h3>")
            out.append(_csv_table(f"{sid}-runs", source.results / "ablation_runs.csv", ABLATION_RUN_CELLS, "run"))
    if runs and source.kind in ("roadmap", "ablate"):
        curves = learning_curves(runs, name)
        if curves is not None:
            png, points = curves
            out.append("<h3>Learning curves</h3>")
            out.append(figure(png, f"{name}: learning curves", f"{sid}-curves"))
            last = [p for i, p in enumerate(points) if i + 1 == len(points) or points[i + 1]["step"] != p["step"]]
            rows = [{k: str(v) for k, v in p.items()} for p in last]
            out.append(html_table(f"{sid}-curves-table", rows, CURVE_CELLS, "step"))
    elif source.sweep is None:
        out.append('<p class="note">No run folders found (pass the sweep folder or --runs): no learning curves.</p>')
    out.append(command_block(commands(source, labels)))
    out.append("</section>")
    return out


def _csv_table(table_id: str, path: Path, cells: Sequence[Cell], key: str) -> str:
    return html_table(table_id, read_csv(path), cells, key).replace(
        f'<table id="{table_id}"', f'<table id="{table_id}" data-csv="{html.escape(str(path))}"', 1)


def render(sources: Sequence[Source], skipped: Sequence[str], command: str) -> str:
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             '<link rel="icon" href="data:,">', "<title>modernize: results</title>",
             f"<style>{STYLE}</style></head><body>",
             "<h1>modernize: the ConvNeXt roadmap, reproduced</h1>",
             "<p>Results of <em>A ConvNet for the 2020s</em> (Liu et al., CVPR 2022) as reproduced by this project. "
             "Our top-1 is the proxy's final-epoch validation accuracy (mean ± std over seeds); the paper's is "
             "ImageNet-1K. This page is self-contained: figures are embedded, nothing is loaded from the network."
             "</p>",
             command_block([command], "This page was made by:")]
    if sources:
        parts.append("<ul>" + "".join(f'<li><a href="#{s.kind}-{i}">{s.kind}: '
                                      f'{html.escape((s.results or s.sweep).name)}</a></li>'
                                      for i, s in enumerate(sources)) + "</ul>")
    if skipped:
        parts.append('<p class="note">Not shown (no results yet): ' + "; ".join(html.escape(s) for s in skipped)
                     + ".</p>")
    for i, source in enumerate(sources):
        parts.extend(section_html(source, i))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", type=Path, nargs="+", help="result folders (experiments/<roadmap|kernels|ablate>/"
                                                           "<profile>-<data>) and/or sweep folders")
    parser.add_argument("--out", type=Path, required=True, help="the HTML file to write")
    parser.add_argument("--runs", type=Path, help="where sweep folders are (default: the runs/ beside each result "
                                                  "folder's kind folder, i.e. experiments/runs)")
    args = parser.parse_args(argv)
    sources, skipped = find_sources(args.dirs, args.runs)
    if not sources:
        print("error: nothing to report: " + "; ".join(skipped), file=sys.stderr)
        return 2
    command = "python -m modernize.report " + " ".join(shlex.quote(str(d)) for d in args.dirs) + \
        (f" --runs {shlex.quote(str(args.runs))}" if args.runs else "") + f" --out {shlex.quote(str(args.out))}"
    atomic_write_text(args.out, render(sources, skipped, command))
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    print(f"wrote {args.out} ({', '.join(f'{s.kind}: {(s.results or s.sweep).name}' for s in sources)})")
    return 0

