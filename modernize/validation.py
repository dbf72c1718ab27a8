"""Every bad value a user can type into a run's config, caught before any data is read or anything is written."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from . import datasets
from .config import model_spec, run_spec
from .engine import PRECISIONS
from .proxy import check_rules
from .runtime import RunError, check_device

RECIPES = ("original", "modern")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine")
LR_SCALING = ("linear", "sqrt")


def validate(cfg: DictConfig) -> None:
    """Every bad value the user can type, caught before any data is read or anything is written."""
    r, p, t = cfg.recipe, cfg.profile, cfg.train

    def positive(name: str, value: Any, allow_none: bool = False, integer: bool = False) -> None:
        if value is None and allow_none:
            return
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        if integer:
            ok = ok and isinstance(value, int)
        if not ok:
            kind = "a positive integer" if integer else "a positive number"
            infinite = isinstance(value, float) and not math.isfinite(value)
            raise RunError(f"{name} must be {kind}{' or null' if allow_none else ''}, got {value!r}"
                           f"{' (it must be finite)' if infinite else ''}")

    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or cfg.seed < 0:
        raise RunError(f"seed must be a non-negative integer, got {cfg.seed!r}")
    if r.name not in RECIPES:
        raise RunError(f"recipe.name must be one of {', '.join(RECIPES)}, got {r.name!r}")
    if r.optimizer not in OPTIMIZERS:
        raise RunError(f"recipe.optimizer must be one of {', '.join(OPTIMIZERS)}, got {r.optimizer!r}")
    if r.schedule not in SCHEDULES:
        raise RunError(f"recipe.schedule must be one of {', '.join(SCHEDULES)}, got {r.schedule!r}")
    positive("recipe.lr", r.lr)
    positive("recipe.lr_batch", r.lr_batch, integer=True)
    positive("recipe.epochs", r.epochs, integer=True)
    positive("recipe.batch_size", r.batch_size, integer=True)
    if r.weight_decay < 0 or r.warmup_epochs < 0 or r.label_smoothing < 0 or r.mixup < 0 or r.cutmix < 0:
        raise RunError("recipe.weight_decay, warmup_epochs, label_smoothing, mixup and cutmix must be >= 0")
    if not 0 <= r.random_erasing <= 1:
        raise RunError(f"recipe.random_erasing is a probability in [0, 1], got {r.random_erasing!r}")
    if r.ema_decay is not None and not 0 < r.ema_decay < 1:
        raise RunError(f"recipe.ema_decay must be in (0, 1) or null, got {r.ema_decay!r}")
    positive("profile.epochs", p.epochs, allow_none=True, integer=True)
    positive("profile.batch_size", p.batch_size, allow_none=True, integer=True)
    positive("profile.resolution", p.resolution, integer=True)
    positive("profile.width_multiplier", p.width_multiplier)
    positive("profile.train_subset", p.train_subset, allow_none=True, integer=True)
    positive("profile.val_subset", p.val_subset, allow_none=True, integer=True)
    if p.lr_scaling not in LR_SCALING:
        raise RunError(f"profile.lr_scaling must be one of {', '.join(LR_SCALING)}, got {p.lr_scaling!r}")
    check_device(str(t.device))
    if t.precision not in PRECISIONS:
        raise RunError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {t.precision!r}")
    if cfg.data.name not in datasets.DATASET_NAMES:
        raise RunError(f"data.name must be one of {', '.join(datasets.DATASET_NAMES)}, got {cfg.data.name!r}")
    root = OmegaConf.select(cfg, "data.root", throw_on_missing=False, default=None)
    if OmegaConf.is_missing(cfg.data, "root"):
        raise RunError(f"data={cfg.data.name} needs data.root=<folder> (train/ and val/ class folders)")
    if root is not None and not Path(str(root)).expanduser().is_dir():
        raise RunError(f"data.root={root} does not exist or is not a folder")
    try:
        check_rules(p)
        model_spec(cfg)
        run_spec(cfg, num_classes=1)  # the profile's changes are valid too (class count comes with the data)
    except ValueError as e:
        raise RunError(str(e)) from None

