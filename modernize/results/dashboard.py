"""A saved W&B workspace that compares a sweep's runs: Figure 2, the curves, the cost and the design axes.

    python -m modernize.dashboard experiments/runs/<sweep> --out experiments/roadmap/<profile>-<data>
    python -m modernize.dashboard experiments/runs/<sweep> --out ... --sync --save   # upload runs, save, print URL

Without network (the default) it writes the workspace as JSON next to the table (<out>/wandb_workspace.json): the
view spec W&B stores, byte for byte what --save sends. The workspace shows the sweep's group and its train runs,
grouped by step in roadmap order (the config key step_label, modernize.design.roadmap.sort_label). Needs the
wandb-workspaces package: pip install '.[dashboard]'. docs/wandb.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..training import wandb_names as names
from ..io import atomic_write_text

SPEC_FILE = "wandb_workspace.json"
# The block's design axes on the parallel coordinates: its scalar fields (the tuples act_after / norm_after are
# lists W&B cannot place on an axis), then the model-level choices the roadmap changes.
MODEL_AXES = ("stem.kind", "downsampling", "head_norm")
MIN_VISIBLE_RUNS = 30  # W&B shows 10 runs per panel by default; the whole roadmap with 2 seeds is 28


def block_axes() -> list[str]:
    from ..design.spec import BlockSpec

    default = BlockSpec()
    return [f"model.block.{f.name}" for f in dataclasses.fields(BlockSpec)
            if not isinstance(getattr(default, f.name), tuple)] + [f"model.{axis}" for axis in MODEL_AXES]


def _require_workspaces():
    try:
        import wandb_workspaces.reports.v2 as wr
        import wandb_workspaces.workspaces as ws
    except ImportError as e:
        raise SystemExit(f"modernize.dashboard needs the wandb-workspaces package ({e}); install it with "
                         f"pip install '.[dashboard]' (or pip install wandb-workspaces)") from None
    return ws, wr


def count_runs(sweep_dir: Path) -> int:
    """Run folders in the sweep (finished or not): how many runs each panel must be able to show."""
    return sum(1 for p in sweep_dir.iterdir() if p.is_dir() and (p / "config.yaml").exists())


def build_workspace(sweep: str, project: str, entity: str | None, runs: int = 0, name: str | None = None):
    """The workspace of a sweep as a wandb_workspaces Workspace; deterministic (panel ids derive from titles)."""
    ws, wr = _require_workspaces()
    visible = max(MIN_VISIBLE_RUNS, runs)
    sections = workspace_sections(ws, wr, visible)
    for section in sections:
        for index, panel in enumerate(section.panels):  # the library draws random ids: derive them instead
            key = f"{section.name}/{index}/{getattr(panel, 'title', None) or type(panel).__name__}"
            object.__setattr__(panel, "_id", hashlib.sha1(key.encode()).hexdigest()[:12])
    return ws.Workspace(
        entity=entity or "", project=project, name=name or f"modernize {sweep}", sections=sections,
        settings=ws.WorkspaceSettings(x_axis=names.EPOCH, max_runs=visible, tooltip_number_of_runs="all_runs"),
        runset_settings=ws.RunsetSettings(
            filters=ws.And(ws.Metric("Group") == sweep, ws.Metric("JobType") == names.JOB_TRAIN),
            groupby=[ws.Config(names.STEP_LABEL)],
            # W&B keeps each config value as {"value": ...}: sort keys and columns name that envelope
            order=[ws.Ordering(ws.Config(f"{names.STEP_INDEX}.value"), ascending=True),
                   ws.Ordering(ws.Config("seed.value"), ascending=True)],
            pinned_columns=[f"config:{names.STEP_LABEL}.value", "config:seed.value", f"summary:{names.FINAL_TOP1}",
                            f"summary:{names.PAPER_TOP1}", f"summary:{names.GFLOPS_224}"]),
    )


def workspace_sections(ws, wr, visible: int) -> list:
    """The workspace's sections: Figure 2 per step, the curves, the cost, the design axes."""
    by_step = wr.Config(names.STEP_LABEL)

    def summary(key: str) -> Any:
        return wr.SummaryMetric(key)

    def per_step(title: str, metrics: list, **kwargs: Any) -> Any:  # one bar per step: mean +- std over seeds
        return wr.BarPlot(title=title, metrics=metrics, groupby=by_step, groupby_aggfunc="mean",
                          groupby_rangefunc="stddev", orientation="h", max_runs_to_show=visible,
                          max_bars_to_show=visible, **kwargs)

    def curve(title: str, key: str) -> Any:  # against the epoch, seeds pooled: mean +- std band per step
        return wr.LinePlot(title=title, x=names.EPOCH, y=[key], title_x="epoch", groupby=by_step,
                           groupby_aggfunc="mean", groupby_rangefunc="stddev", max_runs_to_show=visible)

    return [
        ws.Section(name="Figure 2: top-1 per step", is_open=True, layout_settings=ws.SectionLayoutSettings(
            columns=2, rows=1), panels=[
            per_step("final top-1 (ours, mean ± std over seeds) beside the paper's",
                     [summary(names.FINAL_TOP1), summary(names.PAPER_TOP1)], title_x="top-1 (%)"),
            wr.ScatterPlot(title="GFLOPs (paper-scale model, 224 px) vs final top-1",
                           x=summary(names.GFLOPS_224), y=summary(names.FINAL_TOP1)),
        ]),
        ws.Section(name="Curves (mean ± std over seeds, per step)", is_open=True,
                   layout_settings=ws.SectionLayoutSettings(columns=2, rows=2), panels=[
            curve("validation top-1", names.VAL_TOP1), curve("validation loss", names.VAL_LOSS),
            curve("training loss", names.TRAIN_LOSS), curve("learning rate", names.LR),
        ]),
        ws.Section(name="Cost", is_open=True, layout_settings=ws.SectionLayoutSettings(columns=2, rows=2), panels=[
            per_step("parameters (paper-scale model)", [summary(names.PARAMS)]),
            per_step("GFLOPs at 224 px (paper-scale model)", [summary(names.GFLOPS_224)]),
            per_step("training images/s (median epoch)", [summary(names.TRAIN_IMAGES_PER_S)]),
            per_step("inference images/s", [summary(names.INFER_IMAGES_PER_S)]),
        ]),
        ws.Section(name="Design axes", is_open=True, layout_settings=ws.SectionLayoutSettings(columns=1, rows=2),
                   panels=[
            wr.ParallelCoordinatesPlot(title="block design and top-1", columns=[
                wr.ParallelCoordinatesPlotColumn(metric=wr.Config(names.STEP_INDEX), display_name="step"),
                *[wr.ParallelCoordinatesPlotColumn(metric=wr.Config(axis), display_name=axis.split(".")[-1])
                  for axis in block_axes()],
                wr.ParallelCoordinatesPlotColumn(metric=summary(names.FINAL_TOP1), display_name="final top-1")]),
            wr.RunComparer(diff_only="split"),
        ]),
    ]


def workspace_spec(workspace: Any) -> dict:
    """What --save uploads, as JSON: entity, project and name, and the view spec itself (upsert_view2's `spec`)."""
    view = workspace._to_model()
    return {"entity": view.entity or None, "project": view.project, "name": view.display_name,
            "spec": json.loads(view.spec.model_dump_json(by_alias=True, exclude_none=True))}


def to_json(spec: dict) -> str:
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def offline_runs(sweep_dir: Path) -> list[Path]:
    """The sweep's offline W&B run folders: each run's and the table run's (sweep_dir/wandb)."""
    return sorted([*sweep_dir.glob("*/wandb/offline-run-*"), *sweep_dir.glob("wandb/offline-run-*")])


def upload_offline_runs(sweep_dir: Path, project: str, entity: str | None) -> int:
    runs = offline_runs(sweep_dir)
    if not runs:
        print(f"no offline W&B runs under {sweep_dir} to sync", file=sys.stderr)
        return 0
    command = [sys.executable, "-m", "wandb", "sync", "--project", project,
               *(["--entity", entity] if entity else []), *map(str, runs)]
    print(f"syncing {len(runs)} offline run(s): wandb sync --project {project} ...", flush=True)
    return subprocess.run(command).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, help=f"folder for {SPEC_FILE} (default: the sweep folder)")
    parser.add_argument("--project", help="W&B project (default: the runs' logger.wandb.project)")
    parser.add_argument("--entity", help="W&B entity (default: the runs' logger.wandb.entity, else your default)")
    parser.add_argument("--name", help="the workspace's name (default: 'modernize <sweep>')")
    parser.add_argument("--sync", action="store_true", help="first upload the sweep's offline runs (wandb sync)")
    parser.add_argument("--save", action="store_true", help="save the workspace to W&B and print its URL")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a sweep folder (expected experiments/runs/<sweep>)", file=sys.stderr)
        return 2
    config_project, config_entity = names.sweep_project(args.sweep_dir)
    project, entity = args.project or config_project, args.entity or config_entity
    if args.save and not entity:
        import wandb

        entity = wandb.Api().default_entity  # a saved workspace needs its owner
    sweep = args.sweep_dir.name
    workspace = build_workspace(sweep, project, entity, count_runs(args.sweep_dir), args.name)
    path = (args.out or args.sweep_dir) / SPEC_FILE
    atomic_write_text(path, to_json(workspace_spec(workspace)))
    print(f"W&B workspace for {sweep} ({project}): {path}")
    if args.sync and (status := upload_offline_runs(args.sweep_dir, project, entity)) != 0:
        print(f"error: wandb sync failed ({status}); the workspace was not saved", file=sys.stderr)
        return 1
    if args.save:
        workspace.save()
        print(f"saved: {workspace.url}")
    return 0

