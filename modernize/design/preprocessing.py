"""What a trained model expects of an image: part of the model's record, never re-guessed by whoever evaluates it.

A run trained on Fashion-MNIST at 32 px normalises with Fashion-MNIST's statistics; scoring it through ImageNet's
(an image folder's default) gave 40.9 instead of 84.3 on the same 10,000 test images. So every run writes its
`Preprocessing` into summary.json, every export writes it into its model card, and every consumer reads it from
there: task=eval (modernize/training/evaluation.py), the hub's `exported` entry, timm's `pretrained_cfg` of an
exported model (its fields are timm's own names, so `timm.data.resolve_data_config` and `create_transform` give the
run's transform), and the card.

The transform it describes is timm's evaluation transform: resize the shorter side to floor(size / crop_pct) with
`interpolation`, centre-crop `size`, scale to [0, 1], normalise with `mean` / `std`. Image folders train with
crop_pct 0.875 (the official code's 224 / 256); in-memory data sets (Fashion-MNIST, CIFAR) are evaluated at
crop_pct 1.0 with an antialiased bilinear resize of the whole image (modernize/data/augment.py EvalTransform).
Grayscale images are read as three equal channels, as training fed them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

# The record's format: a reader refuses a record written by a newer modernize rather than guess at its fields.
VERSION = 1
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
IMAGENET_MEAN_STD = (tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD))  # timm's constants
# The official datasets.py's 224 / 256 and torchvision's reference's resize 256 -> crop 224: image folders' eval crop
FOLDER_CROP_PCT = 0.875


class RecordError(ValueError):
    """A model record (preprocessing, model card) that cannot be read: one line saying what and why."""


@dataclass(frozen=True)
class Preprocessing:
    """The evaluation transform a trained model expects, in timm's pretrained_cfg terms."""

    input_size: tuple[int, int, int]  # (channels, height, width) of the tensor the model takes
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    crop_pct: float
    crop_mode: str = "center"

    def __post_init__(self) -> None:
        channels = self.input_size[0] if len(self.input_size) == 3 else None
        if channels is None or any(not isinstance(v, int) or v < 1 for v in self.input_size):
            raise RecordError(f"preprocessing.input_size must be (channels, height, width) of positive integers, "
                              f"got {list(self.input_size)}")
        if len(self.mean) != channels or len(self.std) != channels or min(self.std) <= 0:
            raise RecordError(f"preprocessing.mean and std need {channels} values each (std > 0), got mean="
                              f"{list(self.mean)} std={list(self.std)}")
        if self.interpolation not in INTERPOLATIONS:
            raise RecordError(f"preprocessing.interpolation must be one of {', '.join(INTERPOLATIONS)}, got "
                              f"{self.interpolation!r}")
        if not 0 < self.crop_pct <= 1:
            raise RecordError(f"preprocessing.crop_pct must be in (0, 1], got {self.crop_pct!r}")
        if self.crop_mode != "center":
            raise RecordError(f"preprocessing.crop_mode must be 'center', got {self.crop_mode!r}")

    @property
    def resolution(self) -> int:
        return self.input_size[1]

    @property
    def resize_to(self) -> int:
        """The shorter side before the centre crop (timm's scale_size)."""
        return math.floor(self.resolution / self.crop_pct)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with its format version: what summary.json and the model card hold."""
        return {"version": VERSION, **{f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                                       for f in dataclasses.fields(self)}}

    def timm_cfg(self) -> dict[str, Any]:
        """The pretrained_cfg fields timm's resolve_data_config reads."""
        return {k: tuple(v) if isinstance(v, list) else v for k, v in self.as_dict().items() if k != "version"}

    def describe(self) -> str:
        return (f"{self.resolution} px ({self.interpolation} resize to {self.resize_to}, centre crop), mean "
                f"{_rounded(self.mean)}, std {_rounded(self.std)}")


def _rounded(value: Any) -> Any:
    return [round(v, 4) for v in value] if isinstance(value, list | tuple) and value and \
        isinstance(value[0], float) else value


def preprocessing_from_dict(data: Mapping[str, Any], where: str = "the record") -> Preprocessing:
    """The Preprocessing a record holds; RecordError for one of a newer format or with missing or odd fields."""
    if not isinstance(data, Mapping):
        raise RecordError(f"{where}: its preprocessing is not a mapping ({type(data).__name__})")
    version = data.get("version", VERSION)
    if not isinstance(version, int) or version > VERSION:
        raise RecordError(f"{where}: its preprocessing is of format version {version!r}, newer than this modernize "
                          f"reads ({VERSION}); update modernize")
    names = [f.name for f in dataclasses.fields(Preprocessing)]
    missing = [n for n in names if n not in data and n != "crop_mode"]
    if missing:
        raise RecordError(f"{where}: its preprocessing lacks {', '.join(missing)}")
    fields = {n: tuple(data[n]) if isinstance(data[n], list) else data[n] for n in names if n in data}
    return Preprocessing(**fields)


def preprocessing_of(resolution: int, mean_std: tuple[tuple[float, ...], tuple[float, ...]], *, folder: bool,
                     interpolation: str, channels: int = 3) -> Preprocessing:
    """A run's preprocessing from what it trained on: image folders through the recipe's resize and crop_pct 0.875
    (augment.folder_transforms), in-memory data sets through an antialiased bilinear resize of the whole image
    (augment.EvalTransform), each with its data set's own statistics."""
    mean, std = mean_std
    return Preprocessing(input_size=(channels, int(resolution), int(resolution)), mean=tuple(mean), std=tuple(std),
                         interpolation=interpolation if folder else "bilinear",
                         crop_pct=FOLDER_CROP_PCT if folder else 1.0)
