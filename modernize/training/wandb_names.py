"""What a run is called in W&B, written once: the train runs (modernize.training.train.open_tracker), the sweep's
table run (modernize.tabulate) and the workspace that compares them (modernize.dashboard) all read these names.

History keys are the ones train.log_epoch logs each epoch; summary.json's keys become the train run's W&B summary,
renamed where W&B would confuse them with a history key (SUMMARY_NAMES). tests/test_dashboard.py checks that every
name the workspace references exists in a real offline run.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

JOB_TRAIN, JOB_TABLE = "train", "table"
DEFAULT_PROJECT = "modernize"  # conf/config.yaml's logger.wandb.project

# Config keys a train run adds to its Hydra config: its roadmap position (modernize.design.roadmap.step_index, a
# number) and its label prefixed to sort as text in that order (modernize.design.roadmap.sort_label): W&B groups and
# sorts by them.
STEP_INDEX, STEP_LABEL, LABEL = "step_index", "step_label", "label"

# The epoch-wise history: every key below is plotted against EPOCH by default (wandb define_metric).
EPOCH = "epoch"
EPOCH_KEYS = ("train/*", "val/*", "ema_val/*", "lr", "epoch_time_s")
VAL_TOP1, VAL_LOSS, TRAIN_LOSS, LR = "val/top1", "val/loss", "train/loss", "lr"

# summary.json key -> W&B summary name, where the key alone is ambiguous in W&B: "lr" would overwrite the last
# logged (scheduled) lr with the peak lr, "train_images_per_s" is the median of the per-epoch history key
# train/images_per_s. summary.json itself keeps its keys.
SUMMARY_NAMES = {"lr": "peak_lr", "train_images_per_s": "median_train_images_per_s"}
FINAL_TOP1, PAPER_TOP1, GFLOPS_224, PARAMS = "final_top1", "paper_top1", "gflops_224", "params"
TRAIN_IMAGES_PER_S, INFER_IMAGES_PER_S = SUMMARY_NAMES["train_images_per_s"], "infer_images_per_s"


def table_run_id(sweep: str) -> str:
    """The table run's id: the same for every tabulation of a sweep, so re-tabulating updates that run."""
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", sweep)[:40]
    return f"table-{readable}-{hashlib.sha1(sweep.encode()).hexdigest()[:8]}"


def artifact_name(*parts: str) -> str:
    """An artifact name (letters, digits, '-', '_' and '.') from parts such as a sweep and a run label."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "-".join(parts))[:128]


def sweep_project(sweep_dir: str | Path) -> tuple[str, str | None]:
    """The W&B (project, entity) a sweep's runs logged to, from their config.yaml (the first run that has one);
    the config's defaults ("modernize", no entity) where none has."""
    import yaml

    for config in sorted(Path(sweep_dir).glob("*/config.yaml")):
        try:
            wandb_cfg = ((yaml.safe_load(config.read_text()) or {}).get("logger") or {}).get("wandb") or {}
        except (OSError, yaml.YAMLError, AttributeError):
            continue  # a half-written or foreign file: the next run's config says the same
        if wandb_cfg.get("project"):
            return str(wandb_cfg["project"]), wandb_cfg.get("entity") or None
    return DEFAULT_PROJECT, None
