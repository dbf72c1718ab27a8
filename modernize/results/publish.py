"""Where a tabulated sweep goes beyond its result folder: the sweep's W&B table run, and a README's measured block.
Both take what the results code computed; neither computes anything."""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_text
from .roadmap_table import FIDELITY_FIELDS, ROADMAP, fidelity_record

# What a tabulation writes (roadmap.md's name is kept for the kernel sweep too); the table run's results artifact.
TABLE_FILES = ("roadmap.md", "roadmap.csv", "roadmap.png", "fidelity.csv")


def upload_table_run(table: list[dict], sweep_dir: Path, mode: str, score: dict | None = None,
                     out: Path | None = None, project: str | None = None, entity: str | None = None) -> None:
    """The sweep's table run (job type "table", in the sweep's W&B group): the roadmap and fidelity tables, the
    figure, and the files in `out` as a "results" artifact. Its id is the sweep's (wandb_names.table_run_id), so
    tabulating again updates that run rather than adding one. Project and entity: the runs' config, unless given."""
    from ..training import wandb_names as names
    from ..training.tracking import Tracker

    sweep = sweep_dir.name
    config_project, config_entity = names.sweep_project(sweep_dir)
    tracker = Tracker(mode=mode, project=project or config_project, entity=entity or config_entity, group=sweep,
                      name=f"{sweep}-table", tags=["table"], job_type=names.JOB_TABLE,
                      config={"sweep": sweep, "rows": len(table)}, run_dir=sweep_dir,
                      run_id=names.table_run_id(sweep))
    tracker.table("roadmap", ROADMAP.csv_names, ROADMAP.records(table))
    if score is not None:
        record = fidelity_record(score)
        tracker.table("fidelity", list(FIDELITY_FIELDS), [[record.get(c) for c in FIDELITY_FIELDS]])
        tracker.summary({f"fidelity/{k}": v for k, v in record.items() if v is not None})
    if out is not None:
        if (out / "roadmap.png").is_file():
            tracker.image("figure", out / "roadmap.png")
        tracker.artifact(names.artifact_name(sweep, "results"), "results",
                         [out / name for name in TABLE_FILES], metadata={"sweep": sweep, "rows": len(table)})
    tracker.finish()


def fill_readme_block(readme: Path, source: Path, lines: list[str]) -> None:
    """Replace what sits between a README's markers for `source` with `lines`, so the README's measured table is
    the tabulated one, never typed by hand. Missing markers are an error, not a silent no-op."""
    start, end = f"<!-- roadmap-table: {source} -->", "<!-- /roadmap-table -->"
    text = readme.read_text()
    if start not in text or end not in text.split(start, 1)[1]:
        raise SystemExit(f"error: {readme} has no '{start}' ... '{end}' block to fill")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    atomic_write_text(readme, "\n".join([before + start, *lines, end]) + after)
