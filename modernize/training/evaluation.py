"""`python run.py task=eval +step=X eval.weights=<file> ...`: top-1/top-5 of a checkpoint through a recipe's own
evaluation pipeline, so a cluster user can check the pipeline before spending GPU-days on it: the official
`convnext_tiny_1k_224_ema.pth` must give 82.1 on ImageNet's validation folder, torchvision's ResNet-50
(IMAGENET1K_V1) 76.1.

The weights can be ours (a run's last.pt or weights.pt: the EMA's when the file holds one and eval.ema allows it),
or an official / timm / torchvision state dict (modernize.weights converts them). The model is the step's as the
profile trains it (profile=imagenet: the paper's full-width model), with as many classes as the data set has.
Everything that can be wrong with the weights (no file, a truncated file, another architecture) fails with one line
before any image is read. Writes eval.json and predictions.csv (path,label,top5) next to the weights (eval.out:
elsewhere).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ..data import datasets
from ..data.augment import build_augmentations
from .batches import batch_source
from ..design.config import run_label_of
from .engine import evaluate, memory_format_of
from ..io import atomic_write, atomic_write_json
from ..design.model import build
from .proxy import effective_recipe, run_spec
from .runtime import RunError, setup_runtime
from ..design.weights import load_pretrained, unwrap_state_dict

EMA_CHOICES = ("auto", True, False)


def read_weights(path: Path, use_ema: str | bool, setting: str = "eval.weights", ema_setting: str = "eval.ema=true"
                 ) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict in `path` and what it is ("model" or "ema"); RunError (one line) for a missing, unreadable
    or truncated file. Our last.pt / weights.pt hold the model and, with an EMA, its average under "ema"; a
    .safetensors file is read with safetensors (python -m modernize.export writes one per step). The messages name
    the caller's settings (`setting`, `ema_setting`: task=eval's by default)."""
    if not path.is_file():
        raise RunError(f"{setting}={path} does not exist or is not a file")
    safetensors = path.suffix == ".safetensors"  # python -m modernize.export's, or a timm repository's model file
    try:
        if safetensors:
            from safetensors.torch import load_file

            obj = load_file(path, device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated zip, a pickle torch refuses, not a checkpoint at all
        reason = " ".join(str(e).split())[:160]
        kind = "safetensors file" if safetensors else "PyTorch checkpoint"
        raise RunError(f"{setting}={path} is not a readable {kind} ({type(e).__name__}: {reason}); "
                       f"is the file complete?") from None
    ema = obj.get("ema") if isinstance(obj, dict) else None
    if use_ema is True and ema is None:
        raise RunError(f"{ema_setting} but {path} holds no EMA weights (no 'ema' entry)")
    if ema is not None and use_ema in ("auto", True):
        # torch's AveragedModel: the model's names under "module.", and its update count
        return {k.removeprefix("module."): v for k, v in ema.items() if k != "n_averaged"}, "ema"
    try:
        return unwrap_state_dict(obj), "model"
    except (ValueError, TypeError) as e:
        raise RunError(f"{setting}={path}: {e}") from None


def evaluate_weights(cfg: DictConfig) -> dict[str, Any]:
    """Load the weights into the step's model, evaluate on the data set's validation split, write the results."""
    weights_path, out_dir = checked_paths(cfg)
    state_dict, which = read_weights(weights_path, cfg.eval.ema)
    try:  # where the results go, before any image is read
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot write the results into {out_dir}: {e.strerror or e}; pass eval.out=<folder>") from None
    processes, device = setup_runtime(cfg.train)
    if processes.distributed:
        raise RunError("task=eval runs in one process: start it with python, not torchrun or several SLURM tasks")
    _, recipe = effective_recipe(cfg)
    recipe = OmegaConf.create(recipe)
    data = datasets.load_for_run(cfg, recipe, with_train=False)  # an image folder needs only val/
    model, subset = model_for(cfg, data, state_dict, weights_path)
    memory_format = memory_format_of(cfg.train.channels_last)
    model = model.to(device, memory_format=memory_format)
    batches = batch_source(data, device, cfg.eval.batch_size, processes, cfg.seed, int(cfg.train.workers))
    _, transform = build_augmentations(recipe, resolution=cfg.profile.resolution, mean=data.mean, std=data.std,
                                       loader_transforms=batches.loader_transforms, device=device)
    top5_rows: list[tuple[int, list[int]]] = []
    val_batches = batches.val_batches()
    if subset is not None:  # the folder's labels as the model's ImageNet indices
        val_batches = ((images, subset.to(labels.device)[labels]) for images, labels in val_batches)
    try:
        metrics = evaluate(model, val_batches, transform, cfg.train.precision, memory_format=memory_format,
                           top5=top5_rows, restrict_to=subset)
    finally:
        batches.close()
    result = {"label": run_label_of(cfg), "weights": str(weights_path), "weights_used": which,
              "profile": cfg.profile.name, "data": cfg.data.name, "data_root": cfg.data.root,
              "images": metrics["images"], "top1": metrics["top1"], "top5": metrics["top5"],
              "resolution": cfg.profile.resolution,
              "interpolation": str(recipe.interpolation) if datasets.is_folder(cfg.data.name) else None,
              "precision": cfg.train.precision, "device": str(device)}
    if subset is not None:
        result.update(imagenet_subset_classes=len(subset), restricted_top1=metrics["restricted_top1"])
    write_predictions(out_dir / "predictions.csv", sample_names(data.val), top5_rows)
    atomic_write_json(out_dir / "eval.json", result)
    restricted = (f" over the 1000 classes; top-1 among the folder's {len(subset)} ImageNet classes "
                  f"{result['restricted_top1']:.2f}" if subset is not None else "")
    print(f"{result['label']} ({which} weights of {weights_path.name}) on {cfg.data.name} val, {result['images']} "
          f"images: top-1 {result['top1']:.2f}, top-5 {result['top5']:.2f}{restricted}; wrote "
          f"{out_dir / 'eval.json'} and {out_dir / 'predictions.csv'}", flush=True)
    return result


def checked_paths(cfg: DictConfig) -> tuple[Path, Path]:
    """The weights file and the results folder, after every eval setting is checked (one line each, before any
    work)."""
    from .checks import check_config

    check_config(cfg)
    ev = cfg.eval
    if ev.weights is None:
        raise RunError("task=eval needs eval.weights=<checkpoint file>")
    if ev.ema not in EMA_CHOICES:
        raise RunError(f"eval.ema must be one of auto, true, false; got {ev.ema!r}")
    batch = ev.batch_size
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise RunError(f"eval.batch_size must be a positive integer, got {batch!r}")
    weights_path = Path(str(ev.weights)).expanduser()
    return weights_path, Path(str(ev.out)).expanduser() if ev.out else weights_path.parent


IMAGENET_CLASSES = 1000


def model_for(cfg: DictConfig, data: datasets.DataBundle, state_dict: dict,
              weights_path: Path) -> tuple[torch.nn.Module, torch.Tensor | None]:
    """The model with the weights in it, and the ImageNet indices of the folder's classes where it is scored as an
    ImageNet subset (else None). A model of the data set's own class count comes first; where the weights do not fit
    it and every class folder is an ImageNet wnid (Imagenette, ImageNet-R / -A's 200, a few classes of val), the
    1000-class model scores the folder through the wnids' indices."""
    try:
        return loaded_model(cfg, data.num_classes, state_dict, weights_path), None
    except RunError:
        subset = imagenet_indices(data.val)
        if subset is None or data.num_classes == IMAGENET_CLASSES:
            raise
        return loaded_model(cfg, IMAGENET_CLASSES, state_dict, weights_path), subset


def imagenet_indices(dataset) -> torch.Tensor | None:
    """The ImageNet-1K index of each class folder of an image folder (in its label order) when every folder is an
    ImageNet wnid (n01440764, ...: timm's ImageNetInfo, the order of the 1000 outputs); else None."""
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    classes = getattr(dataset, "classes", None)
    if not classes:
        return None
    from timm.data import ImageNetInfo

    index = {wnid: i for i, wnid in enumerate(ImageNetInfo().label_names())}
    if not all(c in index for c in classes):
        return None
    return torch.tensor([index[c] for c in classes])


def loaded_model(cfg: DictConfig, num_classes: int, state_dict: dict, weights_path: Path) -> torch.nn.Module:
    """The step's model as the profile trains it, with the weights in it; one line where they do not fit."""
    model = build(run_spec(cfg, num_classes))
    try:
        load_pretrained(model, state_dict)
    except ValueError as e:
        first = str(e).splitlines()
        profile = cfg.profile
        raise RunError(f"eval.weights={weights_path} does not fit {run_label_of(cfg)} at profile={profile.name} "
                       f"(width x{profile.width_multiplier}, {num_classes} classes): "
                       f"{' '.join(line.strip() for line in first[:3])} (profile=imagenet for the paper's models)"
                       ) from None
    return model


def sample_names(dataset) -> list[str]:
    """Each validation sample's name, in loader order: the file path of a folder data set, else its index."""
    if isinstance(dataset, torch.utils.data.Subset):
        base = sample_names(dataset.dataset)
        return [base[i] for i in dataset.indices]
    samples = getattr(dataset, "samples", None)
    if samples is not None:
        return [path for path, _label in samples]
    return [str(i) for i in range(len(dataset))]


def write_predictions(path: Path, names: list[str], rows: list[tuple[int, list[int]]]) -> None:
    """predictions.csv: path,label,top5 (the five best class indices, best first, space-separated)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["path", "label", "top5"])
    for name, (label, top5) in zip(names, rows):
        writer.writerow([name, label, " ".join(map(str, top5))])
    atomic_write(path, lambda tmp: Path(tmp).write_text(text.getvalue()))
