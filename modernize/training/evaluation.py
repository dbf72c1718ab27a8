"""`python run.py task=eval eval.weights=<run folder | last.pt | weights.pt | exported file | checkpoint>`: a model's
top-1/top-5, NLL and calibration error on a data set's validation split, with each image's prediction and
probabilities, so a study (robustness, calibration) can use the roadmap's models as they were trained.

The weights are enough where they carry a record (modernize/training/record.py): a run's folder, its last.pt or
weights.pt (the run's config.yaml and summary.json beside them), or a file `python -m modernize.export` wrote (its
model card). The model is then the run's as trained (step, width, classes, layer scale) and the images are
preprocessed as the run's record says (resolution, mean/std, interpolation, crop): a model trained on Fashion-MNIST
is normalised with Fashion-MNIST's statistics on any data, an image folder of its test images included. A typed
model or profile setting that contradicts the record is refused, naming both; the data set's own statistics instead
of the run's are used only when asked for (eval.preprocessing=data). Weights without a record (an official, timm or
torchvision checkpoint, a bare state dict) are the model and preprocessing of the typed settings: the step's model
as the profile trains it (profile=imagenet: the paper's, whose official `convnext_tiny_1k_224_ema.pth` must give
82.1 on ImageNet's validation folder), through the recipe's evaluation pipeline.

Everything that can be wrong with the weights or the settings (no file, a truncated file, another architecture, a
contradiction) fails with one line before any image is read. The whole validation split is scored (eval.images=N:
a seeded class-stratified subset of N, said in the results; a profile's training-data limits never apply). Writes
eval.json, predictions.csv (path,label,top5) and probabilities.npy (float32, one row per line of predictions.csv)
next to the weights (eval.out: elsewhere).
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from ..data import datasets
from ..data.augment import EvalTransform
from ..design.config import compose, model_spec, run_label_of
from ..design.export import profile_differences
from ..design.model import build
from ..design.preprocessing import Preprocessing, RecordError
from ..design.spec import ModelSpec
from ..design.weights import WeightsError, load_pretrained, read_weights
from ..io import atomic_write, atomic_write_json
from .batches import batch_source
from .engine import evaluate, memory_format_of
from .proxy import effective_recipe, run_preprocessing, run_spec
from .record import WeightsRecord, record_of, weights_in
from .runtime import RunError, setup_runtime

EMA_CHOICES = ("auto", True, False)
PREPROCESSING_CHOICES = ("run", "data")
CALIBRATION_BINS = 15  # equal-width confidence bins, L1: Guo et al. 2017's ECE, torchmetrics' default binning


def evaluate_weights(cfg: DictConfig) -> dict[str, Any]:
    """Load the weights into their model, evaluate on the data set's validation split, write the results."""
    given, out = checked_paths(cfg)
    try:
        weights_path = weights_in(given)
        state_dict, which = read_weights(weights_path, cfg.eval.ema)
        record = record_of(weights_path, state_dict)
    except (WeightsError, RecordError) as e:
        raise RunError(str(e)) from None
    cfg, spec_of, preprocessing, origin = settings_of(cfg, record, weights_path)
    out_dir = out or weights_path.parent
    try:  # where the results go, before any image is read
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"cannot write the results into {out_dir}: {e.strerror or e}; pass eval.out=<folder>") from None
    processes, device = setup_runtime(cfg.train)
    if processes.distributed:
        raise RunError("task=eval runs in one process: start it with python, not torchrun or several SLURM tasks")
    _, recipe = effective_recipe(cfg)
    data = datasets.load_for_run(cfg, OmegaConf.create(recipe), with_train=False, val_subset=cfg.eval.images,
                                 eval_preprocessing=preprocessing)  # an image folder needs only val/
    what = f"{record.label} as {record.source} records it" if record else \
        f"{run_label_of(cfg)} at profile={cfg.profile.name} (width x{cfg.profile.width_multiplier})"
    model, subset = model_for(spec_of, data, state_dict, weights_path, what)
    memory_format = memory_format_of(cfg.train.channels_last)
    model = model.to(device, memory_format=memory_format)
    batches = batch_source(data, device, cfg.eval.batch_size, processes, cfg.seed, int(cfg.train.workers))
    transform = (torch.nn.Identity() if batches.loader_transforms  # the loader workers ran image_eval_transform
                 else EvalTransform.of(preprocessing).to(device))
    outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
    val_batches = batches.val_batches()
    if subset is not None:  # the folder's labels as the model's ImageNet indices
        val_batches = ((images, subset.to(labels.device)[labels]) for images, labels in val_batches)
    try:
        metrics = evaluate(model, val_batches, transform, cfg.train.precision, memory_format=memory_format,
                           outputs=outputs, restrict_to=subset)
    finally:
        batches.close()
    labels = torch.cat([labels for labels, _ in outputs])
    probabilities = torch.cat([logits for _, logits in outputs]).softmax(dim=1)
    result = {"label": record.label if record else run_label_of(cfg), "weights": str(weights_path),
              "weights_used": which, "record": origin, "profile": record.profile if record else cfg.profile.name,
              "data": cfg.data.name, "data_root": cfg.data.root,
              "images": metrics["images"], "images_in_split": data.val_total, "top1": metrics["top1"],
              "top5": metrics["top5"], "nll": metrics["loss"],
              "ece": expected_calibration_error(probabilities, labels),
              "ece_binning": f"{CALIBRATION_BINS} equal-width confidence bins, L1 (Guo et al. 2017)",
              "preprocessing": preprocessing.as_dict(), "preprocessing_from": str(cfg.eval.preprocessing),
              "resolution": preprocessing.resolution, "interpolation": preprocessing.interpolation,
              "precision": cfg.train.precision, "device": str(device)}
    if subset is not None:
        result.update(imagenet_subset_classes=len(subset), restricted_top1=metrics["restricted_top1"])
    names = sample_names(data.val)
    write_predictions(out_dir / "predictions.csv", names, labels.tolist(),
                      probabilities.topk(min(5, probabilities.shape[1]), dim=1).indices.tolist())
    write_probabilities(out_dir / "probabilities.npy", probabilities)
    atomic_write_json(out_dir / "eval.json", result)
    restricted = (f" over the 1000 classes; top-1 among the folder's {len(subset)} ImageNet classes "
                  f"{result['restricted_top1']:.2f}" if subset is not None else "")
    cut = (f" (a subset of the {data.val_total}: eval.images={cfg.eval.images})"
           if result["images"] < data.val_total else "")
    print(f"{result['label']} ({which} weights of {weights_path.name}) on {cfg.data.name} val, {result['images']} "
          f"images{cut}, preprocessed as {origin} says ({preprocessing.describe()}): top-1 {result['top1']:.2f}, "
          f"top-5 {result['top5']:.2f}, NLL {result['nll']:.4f}, ECE {result['ece']:.4f}{restricted}; wrote "
          f"{out_dir / 'eval.json'}, {out_dir / 'predictions.csv'} and {out_dir / 'probabilities.npy'}", flush=True)
    return result


def checked_paths(cfg: DictConfig) -> tuple[Path, Path | None]:
    """The weights (a file or a run folder) and the results folder (None: beside the weights), after every eval
    setting is checked (one line each, before any work)."""
    from .checks import check_config

    check_config(cfg)
    ev = cfg.eval
    if ev.weights is None:
        raise RunError("task=eval needs eval.weights=<a run folder, its last.pt, an exported file or a checkpoint>")
    if ev.ema not in EMA_CHOICES:
        raise RunError(f"eval.ema must be one of auto, true, false; got {ev.ema!r}")
    if ev.preprocessing not in PREPROCESSING_CHOICES:
        raise RunError(f"eval.preprocessing must be one of {', '.join(PREPROCESSING_CHOICES)} (run: as the weights' "
                       f"record says; data: the data set's own statistics at the profile's size); got "
                       f"{ev.preprocessing!r}")
    for name in ("batch_size", "images"):
        value = ev[name]
        if (value is not None or name == "batch_size") and (isinstance(value, bool) or not isinstance(value, int)
                                                            or value < 1):
            raise RunError(f"eval.{name} must be a positive integer{' or null' if name == 'images' else ''}, got "
                           f"{value!r}")
    return Path(str(ev.weights)).expanduser(), Path(str(ev.out)).expanduser() if ev.out else None


@functools.cache
def _defaults() -> DictConfig:
    """The config of `python run.py` with nothing typed: what a setting that was not typed still equals."""
    return compose([])


def settings_of(cfg: DictConfig, record: WeightsRecord | None, path: Path
                ) -> tuple[DictConfig, Callable[[int], ModelSpec], Preprocessing, str]:
    """(the config to evaluate with, the model's spec for a class count, the preprocessing, where both came from).

    With a record, the record builds the model and says the preprocessing; the typed model and profile must agree
    with it (a setting left at its default is not a contradiction), and the run's own data set is evaluated unless
    another was typed."""
    if record is None:
        return cfg, lambda classes: run_spec(cfg, classes), run_preprocessing(cfg), \
            "the typed settings (the weights carry no record: no config.yaml beside them, no model card)"
    defaults = _defaults()
    if cfg.model != defaults.model or run_label_of(cfg) != run_label_of(defaults):
        differences = profile_differences(record.spec, model_spec(cfg))
        if differences:
            raise RunError(f"eval.weights={path} is a run of {record.label} ({record.source}), and the typed model "
                           f"{run_label_of(cfg)} is not: {'; '.join(differences[:4])} (theirs in brackets); leave "
                           f"out +step, +delta and model settings: the record builds the model")
    if cfg.profile != defaults.profile:
        typed = {"width": f"x{float(cfg.profile.width_multiplier):g}", "resolution": int(cfg.profile.resolution)}
        recorded = {"width": f"x{record.spec.width_multiplier:g}", "resolution": record.preprocessing.resolution}
        if cfg.eval.preprocessing == "data":
            typed.pop("resolution")
        contradictions = [f"{k} {typed[k]} vs {recorded[k]}" for k in typed if typed[k] != recorded[k]]
        if contradictions:
            raise RunError(f"profile={cfg.profile.name} contradicts the record of eval.weights={path} ({record.source}"
                           f": profile={record.profile}): {', '.join(contradictions)}; leave out profile=, or add "
                           f"eval.preprocessing=data to score at the typed resolution")
    if cfg.data == defaults.data and record.data.get("name") and record.data != OmegaConf.to_container(cfg.data):
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.data = OmegaConf.create(record.data)  # the run's own data set, where no other was typed
    if cfg.eval.preprocessing == "data":
        return cfg, lambda classes: record.spec, run_preprocessing(cfg), \
            f"eval.preprocessing=data (the statistics of data={cfg.data.name}, not the run's)"
    return cfg, lambda classes: record.spec, record.preprocessing, record.source


IMAGENET_CLASSES = 1000


def model_for(spec_of: Callable[[int], ModelSpec], data: datasets.DataBundle, state_dict: dict, weights_path: Path,
              what: str) -> tuple[torch.nn.Module, torch.Tensor | None]:
    """The model with the weights in it, and the ImageNet indices of the folder's classes where it is scored as an
    ImageNet subset (else None). A model of the data set's own class count comes first; where the weights do not fit
    it and every class folder is an ImageNet wnid (Imagenette, ImageNet-R / -A's 200, a few classes of val), the
    1000-class model scores the folder through the wnids' indices. A model whose classes are neither is refused."""
    subset = imagenet_indices(data.val) if data.num_classes != IMAGENET_CLASSES else None
    try:
        model = loaded_model(spec_of(data.num_classes), state_dict, weights_path, what)
    except RunError:
        if subset is None:
            raise
        model = loaded_model(spec_of(IMAGENET_CLASSES), state_dict, weights_path, what)
    if model.num_classes == data.num_classes:
        return model, None
    if model.num_classes == IMAGENET_CLASSES and subset is not None:
        return model, subset
    raise RunError(f"eval.weights={weights_path} is a model of {model.num_classes} classes ({what}) and "
                   f"data={data.name} has {data.num_classes}: evaluate it on data of its own classes")


def loaded_model(spec: ModelSpec, state_dict: dict, weights_path: Path, what: str) -> torch.nn.Module:
    """The model of `spec` with the weights in it; one line where they do not fit."""
    model = build(spec)
    try:
        load_pretrained(model, state_dict)
    except ValueError as e:
        first = str(e).splitlines()
        raise RunError(f"eval.weights={weights_path} does not fit {what}, {spec.num_classes} classes: "
                       f"{' '.join(line.strip() for line in first[:3])} (profile=imagenet for the paper's models)"
                       ) from None
    return model


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor,
                               bins: int = CALIBRATION_BINS) -> float:
    """The expected calibration error: the images binned by their top-1 confidence into `bins` equal-width bins of
    (0, 1], the |accuracy - mean confidence| of each bin weighted by its share of the images (Guo et al. 2017)."""
    confidence, predicted = probabilities.max(dim=1)
    correct = predicted.eq(labels).double()
    which = (confidence.double() * bins).ceil().clamp(1, bins).long() - 1  # (k/bins, (k+1)/bins] -> k
    count = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, torch.ones_like(correct))
    gap = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, correct - confidence.double())
    return float(gap.abs().sum() / count.sum().clamp(min=1))


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


def sample_names(dataset) -> list[str]:
    """Each validation sample's name, in loader order: the file path of a folder data set, else its index."""
    if isinstance(dataset, torch.utils.data.Subset):
        base = sample_names(dataset.dataset)
        return [base[i] for i in dataset.indices]
    samples = getattr(dataset, "samples", None)
    if samples is not None:
        return [path for path, _label in samples]
    return [str(i) for i in range(len(dataset))]


def write_predictions(path: Path, names: list[str], labels: list[int], top5s: list[list[int]]) -> None:
    """predictions.csv: path,label,top5 (the five best class indices, best first, space-separated)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["path", "label", "top5"])
    for name, label, top5 in zip(names, labels, top5s):
        writer.writerow([name, label, " ".join(map(str, top5))])
    atomic_write(path, lambda tmp: Path(tmp).write_text(text.getvalue()))


def write_probabilities(path: Path, probabilities: torch.Tensor) -> None:
    """probabilities.npy: float32 [images, classes], the softmax of each image's logits, in predictions.csv's order."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append .npy to the temporary name
            np.save(f, probabilities.numpy().astype(np.float32))
    atomic_write(path, write)
