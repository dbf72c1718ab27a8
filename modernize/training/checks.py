"""Every bad value a user can type into a run's config, caught before any data is read or anything is written."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..data import datasets
from ..design.config import model_spec
from .batch_plan import AUTO
from .engine import PRECISIONS
from .proxy import check_rules, run_spec
from .runtime import THREADS_AUTO, RunError, check_device, wants_cuda

RECIPES = ("original", "modern")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine")
LR_SCALING = ("linear", "sqrt")
INTERPOLATIONS = ("bilinear", "bicubic")
ERASING_MODES = ("const", "rand", "pixel")  # timm's RandomErasing modes
PIPELINES = ("timm", "torchvision")  # whose per-image transforms a folder data set's loader runs
FILES_OF = {"fashion_mnist": "the four idx files", "cifar10": "the cifar-10-batches-py pickles",
            "cifar100": "the cifar-100-python pickles", "synthetic": "none: it draws its images"}


def check_config(cfg: DictConfig) -> None:
    """Every bad value the user can type, caught before any data is read or anything is written."""
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or cfg.seed < 0:
        raise RunError(f"seed must be a non-negative integer, got {cfg.seed!r}")
    check_recipe(cfg.recipe)
    check_profile(cfg.profile)
    check_train(cfg.train, global_batch=cfg.profile.batch_size or cfg.recipe.batch_size)
    check_data(cfg)
    try:
        check_rules(cfg.profile)
        model_spec(cfg)
        run_spec(cfg, num_classes=1)  # the profile's changes are valid too (class count comes with the data)
    except ValueError as e:
        raise RunError(str(e)) from None


def positive(name: str, value: Any, allow_none: bool = False, integer: bool = False) -> None:
    """`name` holds a finite positive number (an integer where `integer`; or null where `allow_none`)."""
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


def check_recipe(r: DictConfig) -> None:
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
    check_recipe_ranges(r)


def check_profile(p: DictConfig) -> None:
    positive("profile.epochs", p.epochs, allow_none=True, integer=True)
    positive("profile.batch_size", p.batch_size, allow_none=True, integer=True)
    positive("profile.resolution", p.resolution, integer=True)
    positive("profile.width_multiplier", p.width_multiplier)
    positive("profile.train_subset", p.train_subset, allow_none=True, integer=True)
    positive("profile.val_subset", p.val_subset, allow_none=True, integer=True)
    if p.lr_scaling not in LR_SCALING:
        raise RunError(f"profile.lr_scaling must be one of {', '.join(LR_SCALING)}, got {p.lr_scaling!r}")


def check_training_device(cfg: DictConfig) -> None:
    """A profile meant for a GPU (profile.for_gpu) is not trained on a CPU by accident: with train.device=auto on a
    machine without CUDA it is refused; train.device=cpu says the CPU is meant."""
    if OmegaConf.select(cfg, "profile.for_gpu", default=False) and str(cfg.train.device) == "auto" \
            and not wants_cuda("auto"):
        raise RunError(f"profile={cfg.profile.name} is meant for a GPU and this machine has none (CUDA is not "
                       f"available): on the CPU it would train for days; use profile=cpu, or pass train.device=cpu "
                       f"to train this profile on the CPU anyway")


def check_runtime_fields(t: DictConfig) -> None:
    """The settings of how a run executes, each in its range, so that a typo is one line and not a PyTorch
    traceback minutes later (train.threads=-2 reached torch.set_num_threads)."""
    if t.threads != THREADS_AUTO and t.threads is not None and (not isinstance(t.threads, int) or
                                                                isinstance(t.threads, bool) or t.threads < 1):
        raise RunError(f"train.threads must be {THREADS_AUTO}, a positive integer or null, got {t.threads!r}")
    positive("train.log_every_steps", t.log_every_steps, integer=True)
    positive("train.throughput_batch", t.throughput_batch, integer=True)
    for name in ("workers", "checkpoint_every_steps"):
        value = t[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise RunError(f"train.{name} must be a whole number >= 0, got {value!r}")
    for name in ("channels_last", "compile", "deterministic", "ema_eval", "resume"):
        if not isinstance(t[name], bool):
            raise RunError(f"train.{name} must be true or false, got {t[name]!r}")


def check_train(t: DictConfig, global_batch: int) -> None:
    accumulation = OmegaConf.select(t, "accumulation_steps", default=1)
    if accumulation != AUTO:
        try:
            positive("train.accumulation_steps", accumulation, integer=True)
        except RunError:
            raise RunError(f"train.accumulation_steps must be a positive integer or auto, got {accumulation!r}") \
                from None
        if global_batch % accumulation:
            raise RunError(f"the global batch {global_batch} must divide evenly into train.accumulation_steps="
                           f"{accumulation} micro-batches")
    positive("train.device_batch", OmegaConf.select(t, "device_batch"), allow_none=True, integer=True)
    positive("train.grad_clip", t.grad_clip, allow_none=True)
    check_runtime_fields(t)
    check_device(str(t.device))
    if t.precision not in PRECISIONS:
        raise RunError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {t.precision!r}")


def check_data(cfg: DictConfig) -> None:
    if cfg.data.name not in datasets.DATASET_NAMES:
        raise RunError(f"data.name must be one of {', '.join(datasets.DATASET_NAMES)}, got {cfg.data.name!r}")
    root = OmegaConf.select(cfg, "data.root", throw_on_missing=False, default=None)
    if OmegaConf.is_missing(cfg.data, "root"):
        others = "|".join(n for n in datasets.DATASET_NAMES if n != cfg.data.name)
        raise RunError(f"data={cfg.data.name} (profile={cfg.profile.name}) needs data.root=<folder> with train/ and "
                       f"val/ class folders, ImageNet's layout: pass data.root=<folder>, or data=<{others}> to train "
                       f"on another data set")
    if root is not None and not Path(str(root)).expanduser().is_dir():
        raise RunError(f"data.root={root} does not exist or is not a folder")
    if root is not None and not datasets.is_folder(cfg.data.name) \
            and (layout := datasets.image_folder_layout(Path(str(root)).expanduser())):
        raise RunError(f"data.root={root} holds {layout}, and data={cfg.data.name} reads its own files "
                       f"({FILES_OF[cfg.data.name]}): a folder of images needs data=imagefolder")
    if cfg.data.name == "synthetic":
        try:
            datasets.check_synthetic_fits(cfg.data.get("size", 512), cfg.profile.resolution)
        except datasets.DataError as e:
            raise RunError(str(e)) from None



def shorter_recipe_hint(name: str, bound_by: str) -> str:
    """Where a recipe field's range comes from another setting (recipe.epochs), the error says so: a user who
    shortened the recipe never set the field the check names."""
    if not bound_by:
        return ""
    return (f" (its range comes from {bound_by}: change recipe.{name} with it, or leave the recipe as it is and "
            f"shorten the run with profile.epochs=N, which scales the schedule)")


def check_recipe_ranges(r: DictConfig) -> None:
    """Every numeric recipe field within its range (one line naming the field, the value and what is allowed)."""
    def within(name: str, value: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False,
               allow_none: bool = False, bound_by: str = "") -> None:
        """`bound_by`: the setting the range comes from, named in the error (the user may have changed that one)."""
        if value is None and allow_none:
            return
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = number and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
        if not ok:
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise RunError(f"recipe.{name} must be a number in {interval}{' or null' if allow_none else ''}, "
                           f"got {value!r}{shorter_recipe_hint(name, bound_by)}")

    within("weight_decay", r.weight_decay, 0, math.inf, high_open=True)
    within("warmup_epochs", r.warmup_epochs, 0, r.epochs, high_open=True, bound_by=f"recipe.epochs={r.epochs}")
    within("min_lr", r.min_lr, 0, math.inf, high_open=True)
    within("label_smoothing", r.label_smoothing, 0, 1, high_open=True)
    within("mixup", r.mixup, 0, math.inf, high_open=True)
    within("cutmix", r.cutmix, 0, math.inf, high_open=True)
    within("random_erasing", r.random_erasing, 0, 1)
    within("ema_decay", r.ema_decay, 0, 1, low_open=True, high_open=True, allow_none=True)
    within("momentum", r.momentum, 0, 1, high_open=True, allow_none=r.optimizer != "sgd")
    within("gamma", r.gamma, 0, math.inf, low_open=True, high_open=True, allow_none=r.schedule != "step")
    if r.optimizer == "adamw":
        betas = list(r.betas) if OmegaConf.is_list(r.betas) else r.betas
        if not (isinstance(betas, list) and len(betas) == 2):
            raise RunError(f"recipe.betas must be two numbers in [0, 1), got {betas!r}")
        for i, beta in enumerate(betas):
            within(f"betas[{i}]", beta, 0, 1, high_open=True)
    if r.schedule == "step":
        milestones = list(r.milestones or [])
        if not milestones or milestones != sorted(set(milestones)) or not all(
                isinstance(m, int) and 0 < m < r.epochs for m in milestones):
            raise RunError(f"recipe.milestones must be increasing whole epochs in (0, {r.epochs}) for schedule=step, "
                           f"got {r.milestones!r}{shorter_recipe_hint('milestones', f'recipe.epochs={r.epochs}')}")
    scale = list(r.random_resized_crop_scale)
    if len(scale) != 2 or not all(isinstance(v, (int, float)) for v in scale) or not 0 < scale[0] <= scale[1] <= 1:
        raise RunError(f"recipe.random_resized_crop_scale must be [low, high] with 0 < low <= high <= 1, got {scale}")
    if r.randaugment is not None:
        ra = list(r.randaugment)
        if len(ra) != 2 or not all(isinstance(v, (int, float)) for v in ra) or not (0 <= ra[0] <= 10 and ra[1] >= 0):
            raise RunError(f"recipe.randaugment must be [magnitude in 0..10, magnitude std >= 0] or null, got {ra}")
    interpolation = OmegaConf.select(r, "interpolation", default="bilinear")
    if interpolation not in INTERPOLATIONS:
        raise RunError(f"recipe.interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    check_pipeline(r)
    mode = OmegaConf.select(r, "random_erasing_mode", default="const")
    if mode not in ERASING_MODES:
        raise RunError(f"recipe.random_erasing_mode must be one of {', '.join(ERASING_MODES)}, got {mode!r}")


def check_pipeline(r: DictConfig) -> None:
    """Whose per-image transforms a folder data set's loader runs; torchvision's reference has none of timm's
    augmentations, so a recipe that asks for them needs timm's."""
    pipeline = OmegaConf.select(r, "pipeline", default="timm")
    if pipeline not in PIPELINES:
        raise RunError(f"recipe.pipeline must be one of {', '.join(PIPELINES)}, got {pipeline!r}")
    if pipeline == "torchvision" and (r.randaugment is not None or r.random_erasing > 0):
        raise RunError("recipe.pipeline=torchvision has no RandAugment or random erasing (torchvision's reference "
                       "recipe has neither): use recipe.pipeline=timm, or recipe.randaugment=null "
                       "recipe.random_erasing=0")
