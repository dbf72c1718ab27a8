"""Reading a sweep's run folders, the one place that knows their layout: every results tool (tabulate, ablate, the
kernel sweep, report, dashboard) reads runs through here.

A sweep folder holds one folder per run, named <label>-seed<N> (a roadmap step, or a label made of deltas:
modernize.design.roadmap.run_label), or k<kernel>-seed<N> for the kernel sweep. A run folder holds summary.json when
the run finished, failed.json when it failed, and only last.pt (or config.yaml) while it is unfinished; metrics.jsonl
has one line per epoch. A run is placed by its own config.yaml (else by its folder's name), never by the fields of
its result file alone: a summary copied into another run's folder is reported, not moved.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..io import read_json

RESULT_FILES = (("summary.json", "ok"), ("failed.json", "failed"))
SEED_SUFFIX = "-seed"
FOLDER_NAME = re.compile(rf"(?:k(?P<kernel>\d+)|(?P<label>.+)){SEED_SUFFIX}(?P<seed>-?\d+)")


def folder_label(name: str) -> str:
    """The label part of a run folder's name: 'gelu' of gelu-seed0, 'k7' of k7-seed1."""
    return name.rsplit(SEED_SUFFIX, 1)[0]


def folder_identity(name: str) -> dict[str, Any]:
    """What a run folder's name says: its seed, and its label or kernel size ({} for another name)."""
    match = FOLDER_NAME.fullmatch(name)
    if match is None:
        return {}
    identity: dict[str, Any] = {"seed": int(match["seed"])}
    if match["kernel"]:
        identity["kernel_size"] = int(match["kernel"])
    else:
        identity["label"] = match["label"]
    return identity


def run_folders(sweep: Path) -> dict[str, list[Path]]:
    """{label: [run folder per seed]} of a sweep folder, in name order."""
    out: dict[str, list[Path]] = {}
    for run in sorted(p for p in sweep.iterdir() if p.is_dir() and SEED_SUFFIX in p.name):
        out.setdefault(folder_label(run.name), []).append(run)
    return out


def collect(sweep_dir: Path, by_kernel: bool = False) -> dict[str, list[dict]]:
    """{row label: [result per seed]} from every run folder under sweep_dir (rows per (label, kernel size) with
    by_kernel). A run whose files are corrupt or belong to another run is a failed result saying why; nothing in a run
    folder stops a table."""
    rows: dict[str, list[dict]] = {}
    for run in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        result = read_run(run)
        if result is None:
            continue
        result["run_dir"] = run.name
        rows.setdefault(row_label(result, by_kernel), []).append(result)
    return rows


def row_label(result: dict, by_kernel: bool) -> str:
    """A row per run label, or per (label, kernel size) for the kernel sweep (Figure 2's 3/5/7/9/11)."""
    label = result.get("label", "?")
    return f"{label} k={result.get('kernel_size', '?')}" if by_kernel else label


def read_run(run: Path) -> dict | None:
    """One run folder's result with its status ("ok", "failed", "unfinished"); None for a folder that holds no run.
    Its "label" is the run's label (a roadmap step, or deltas such as gelu+layer_norm); summary.json and failed.json
    files written before it was named so call it "step"."""
    identity, config_hash = run_identity(run)
    for name, status in RESULT_FILES:
        path = run / name
        if not (path.exists() or path.is_symlink()):
            continue
        try:
            result = read_json(path)
        except (OSError, ValueError) as e:  # invalid JSON, a directory, unreadable
            return failure(identity, run, f"{name} is unreadable ({type(e).__name__}: {e})")
        if not isinstance(result, dict):
            return failure(identity, run, f"{name} holds a JSON {type(result).__name__}, not a run's result")
        result = with_current_keys(result)
        if status == "ok" and not isinstance(result.get("final_top1"), (int, float)):
            return failure(identity, run, f"{name} has no final_top1: not a modernize summary")
        mismatch = mismatched(result, identity, config_hash)
        if mismatch:
            return failure(identity, run, f"{name} {mismatch}")
        return result | identity | {"status": status}
    if (run / "last.pt").exists() or (run / "config.yaml").exists():
        return {"label": folder_label(run.name)} | identity | {"status": "unfinished"}
    return None


def run_identity(run: Path) -> tuple[dict[str, Any], str | None]:
    """(label, seed, kernel_size) of the run that owns the folder and its config hash, from config.yaml;
    from the folder's name where there is none. Only what is known is returned."""
    path = run / "config.yaml"
    if path.exists():
        try:
            from omegaconf import OmegaConf

            from ..design.config import kernel_size_of, run_label_of
            from ..training.identity import config_hash

            cfg = OmegaConf.load(path)
            return ({"label": run_label_of(cfg), "seed": cfg.seed, "kernel_size": kernel_size_of(cfg)},
                    config_hash(cfg))
        except Exception:  # noqa: BLE001 -- a corrupt config.yaml: fall back to the folder's name
            pass
    return folder_identity(run.name), None


def with_current_keys(result: dict) -> dict:
    """A summary.json / failed.json with the keys of today (one written before the rename calls its label "step":
    modernize.design.config.recorded_label)."""
    from ..design.config import LABEL_KEY, OLD_LABEL_KEYS, recorded_label

    current = {key: value for key, value in result.items() if key not in OLD_LABEL_KEYS}
    label = recorded_label(result)
    return current if label is None else current | {LABEL_KEY: label}


def mismatched(result: dict, identity: dict, config_hash: str | None) -> str:
    """Why a result file is not this folder's run's ('' when it is)."""
    for key, value in identity.items():
        if key in result and result[key] != value:
            return (f"is of {key} {result[key]!r}, but this run directory is {key} {value!r} (copied from another "
                    f"run?); delete it and re-run")
    if config_hash and result.get("config_hash") not in (None, config_hash):
        return (f"is of another config (hash {result['config_hash']}; config.yaml: {config_hash}); delete it and "
                f"re-run")
    return ""


def failure(identity: dict, run: Path, reason: str) -> dict:
    return {"label": folder_label(run.name)} | identity | {"status": "failed", "error": f"{reason} ({run.name})"}


def metrics(run: Path) -> list[dict]:
    """A run's metrics.jsonl: one dict per epoch ([] without the file)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
