"""Augmentation. Folder data sets (ImageNet): the official code's per-image transforms in the loader workers
(:func:`folder_transforms`). In-memory data sets: batched on the device, the training pipeline and the evaluation
transform, two separate modules, both built from the recipe by :func:`build_augmentations`.

Both take uint8 ``[B, 3, H, W]`` on any device and return normalised float ``[B, 3, resolution, resolution]``.
Train (the paper's / timm's order): random-resized crop -> horizontal flip -> RandAugment (on uint8) ->
normalise -> random erasing. Eval: resize the shorter side to ``resolution`` (antialiased), centre-crop,
normalise.

Why hand-written and not ``kornia.augmentation`` (0.9.0): ``benchmarks/augment.py`` times both on the same
uint8 batch (CPU, 1 thread, batch 128, per-sample parameters; docs/augmentation.md has the table). kornia is
faster at nothing beyond the noise; kornia/ours time over four runs at 32 px / 64 px:

* random-resized crop (ours: one ``roi_align``): 1.7-3.0x / 1.0-1.1x
* horizontal flip: 1.7-2.1x / 1.1-1.5x
* RandAugment (then torchvision's ops per group of 16 samples; since replaced by timm's semantics per image,
  modernize.data.randaugment): 0.97-1.2x (a tie) / 1.2-1.9x. kornia's ``auto.RandAugment`` draws one op pair for the
  whole batch, has no magnitude std (timm's ``mstd0.5``) and works on float images: not the paper's either.
* random erasing (ours: one masked fill): 1.7-3.6x / 1.3-1.4x
* the whole training pipeline: 1.2-1.4x / 1.1-1.4x
* MixUp / CutMix are not ours but torchvision's ``v2.MixUp`` / ``v2.CutMix`` (``train.make_mixing``); kornia's take
  2.6-8.4x / 14-22x as long and draw MixUp's weight from U(0, 1) instead of Beta(alpha).

Ours is also needed: the committed tables were made with its random stream. Every draw comes from torch's global
*CPU* generator in a fixed order, whatever the images' device, so a run resumed from ``torch.get_rng_state()``
replays the same crops, flips, ops and boxes, and a rerun re-creates the tables bit for bit; kornia draws its
parameters differently and would change every result. So all of it stays ours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torchvision
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from ..design.preprocessing import Preprocessing, preprocessing_of
from .randaugment import BatchedRandAugment

__all__ = ["EvalTransform", "Normalize", "TrainAugment", "build_augmentations", "resize_center_crop"]

# RandomResizedCrop's aspect-ratio range (torchvision and timm default, used by the paper).
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
ERASE_SCALE = (0.02, 0.33)  # torchvision's / timm's RandomErasing defaults
ERASE_RATIO = (0.3, 3.3)


def recipe_crop(recipe: Mapping[str, Any]) -> tuple[tuple[float, float] | None, bool]:
    """The recipe's training crop and flip: (random-resized-crop scale, or None for no random crop; flip or not)."""
    crop_scale = tuple(recipe["random_resized_crop_scale"]) if recipe["random_resized_crop"] else None
    return crop_scale, bool(recipe["hflip"])


# ------------------------------------------------------------------------------ folder data: the official pipeline
# Folder data sets (ImageNet) are what the paper trained on, so their loader workers run the official code's own
# per-image transforms, not a re-implementation: official datasets.py build_transform, i.e. timm's
# create_transform for training and torchvision's Resize + CenterCrop for evaluation (recipe.pipeline: timm). The
# original recipe's reference is torchvision's own (references/classification presets.py ClassificationPresetTrain:
# RandomResizedCrop bilinear, flip, normalise; recipe.pipeline: torchvision). docs/recipe.md compares every setting.


def randaugment_policy(magnitude: float, std: float) -> str:
    """timm's RandAugment string for the paper's "RandAugment (9, 0.5)": the official main.py's --aa
    rand-m9-mstd0.5-inc1 (two ops per image, each applied with probability 0.5, the 'increasing' op set)."""
    return f"rand-m{round(magnitude)}-mstd{std:g}-inc1"


def folder_transforms(recipe: Mapping[str, Any], *, resolution: int, mean: Sequence[float],
                      std: Sequence[float]):
    """(train, eval) per-image transforms of a folder data set's loader workers: PIL image -> normalised float
    ``[3, resolution, resolution]``, as the official code's (``recipe=None``: the eval transform for both)."""
    from timm.data import create_transform
    from torchvision import transforms as T

    interpolation = str(recipe["interpolation"]) if recipe is not None else "bilinear"
    mode = T.InterpolationMode(interpolation)
    normalize = [T.ToTensor(), T.Normalize(mean, std)]
    evaluate = image_eval_transform(preprocessing_of(resolution, (mean, std), folder=True,
                                                     interpolation=interpolation))
    if recipe is None:
        return evaluate, evaluate
    crop_scale, hflip = recipe_crop(recipe)
    if recipe.get("pipeline", "timm") == "torchvision":  # the original recipe's reference: nothing of timm's
        crop = (T.RandomResizedCrop(resolution, scale=crop_scale, ratio=CROP_RATIO, interpolation=mode,
                                    antialias=True) if crop_scale is not None
                else T.Compose([T.Resize(resolution, interpolation=mode), T.CenterCrop(resolution)]))
        return T.Compose([crop, *([T.RandomHorizontalFlip(0.5)] if hflip else []), *normalize]), evaluate
    randaugment = recipe["randaugment"]
    train = create_transform(
        resolution, is_training=True, scale=tuple(crop_scale or (1.0, 1.0)), ratio=CROP_RATIO,
        hflip=0.5 if hflip else 0.0,
        color_jitter=None,  # the official 0.4 is inert: timm applies no colour jitter next to RandAugment
        auto_augment=randaugment_policy(*randaugment) if randaugment else None, interpolation=interpolation,
        re_prob=float(recipe["random_erasing"]), re_mode=str(recipe["random_erasing_mode"]), re_count=1,
        mean=tuple(mean), std=tuple(std))
    if crop_scale is None:  # a profile's crop rule switched the random crop off: the evaluation's resize and crop
        train.transforms[0] = T.Compose([T.Resize(resolution, interpolation=mode), T.CenterCrop(resolution)])
    if randaugment:
        for op in randaugment_ops(train):
            op.magnitude = float(randaugment[0])  # timm's string holds an integer; a budget rule may scale it
        with_zero_bit_posterize(train)
    return train, evaluate


def image_eval_transform(preprocessing: Preprocessing):
    """A PIL image -> the normalised float ``[3, size, size]`` a model with this record expects: timm's evaluation
    transform (resize the shorter side to floor(size / crop_pct), centre crop, normalise), as torchvision ops."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(preprocessing.resize_to, interpolation=T.InterpolationMode(preprocessing.interpolation)),
                      T.CenterCrop(preprocessing.resolution), T.ToTensor(),
                      T.Normalize(preprocessing.mean, preprocessing.std)])


def randaugment_ops(compose) -> list:
    """The AugmentOps of the timm RandAugment in a Compose (none without one)."""
    return [op for t in compose.transforms if type(t).__name__ == "RandAugment" for op in t.ops]


def with_zero_bit_posterize(compose):
    """timm's RandAugment in `compose` with PosterizeIncreasing as the official runs had it (see `posterize`)."""
    for op in randaugment_ops(compose):
        if op.name == "PosterizeIncreasing":
            op.aug_fn = posterize
    return compose


def posterize(image, bits: int, **_):
    """PIL's posterize as timm 0.3.2 ran it in the official runs: 0 bits kept is a black image. Pillow >= 12 refuses
    0 bits (ValueError), which timm's PosterizeIncreasing asks for whenever a magnitude draw reaches 10 (at M=9,
    std 0.5: 2.3% of its draws), so timm's own op would stop a run every few hundred images."""
    if bits >= 8:
        return image
    mask = ~(2 ** (8 - int(bits)) - 1) & 0xFF
    return image.point([level & mask for level in range(256)] * len(image.getbands()))


# ------------------------------------------------------------------------------- in-memory data: batched on device
def build_augmentations(recipe: Mapping[str, Any], *, resolution: int, mean: Sequence[float],
                        std: Sequence[float], loader_transforms: bool,
                        device: torch.device | str | None = None) -> tuple[nn.Module, nn.Module]:
    """The training augmentation and the evaluation transform for ``recipe`` (a recipe config: its
    ``random_resized_crop``, ``random_resized_crop_scale``, ``hflip``, ``randaugment`` and ``random_erasing``).

    ``loader_transforms``: the images come from a DataLoader whose workers already ran the whole per-image
    pipeline (folder data sets, :func:`folder_transforms`), so they arrive augmented and normalised and both
    modules are the identity. In-memory data sets arrive as uint8 at native size and are augmented here, batched.
    ``device``: where to put both modules (None: leave them on the CPU).
    """
    if loader_transforms:
        return nn.Identity(), nn.Identity()
    missing = [k for k in ("random_resized_crop", "random_resized_crop_scale", "hflip", "randaugment",
                           "random_erasing") if k not in recipe]
    if missing:
        raise ValueError(f"the recipe lacks {', '.join(missing)}: is it a conf/recipe/*.yaml config?")
    crop_scale, hflip = recipe_crop(recipe)
    train = TrainAugment(
        resolution=resolution, mean=mean, std=std, crop_scale=crop_scale, hflip=hflip,
        randaugment=tuple(recipe["randaugment"]) if recipe["randaugment"] else None,
        random_erasing=float(recipe["random_erasing"]), interpolation=str(recipe.get("interpolation", "bilinear")))
    evaluate = EvalTransform(resolution=resolution, mean=mean, std=std)
    if device is not None:
        train, evaluate = train.to(device), evaluate.to(device)
    return train, evaluate


class Normalize(nn.Module):
    """Float images in 0..255 -> ``(x / 255 - mean) / std`` per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 values each, std > 0; got mean={mean}, std={std}")
        # Kept in 0..255 units so normalisation is one fused (x - m) / s on the uint8-valued floats.
        # Non-persistent: derived from config, not state worth checkpointing.
        self.register_buffer("mean255", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.register_buffer("std255", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255,
                             persistent=False)

    def forward(self, x: Tensor, inplace: bool = False) -> Tensor:
        # .to is a no-op once the module sits on the images' device. In place (the same two ops, the same floats)
        # where the caller owns x: at the cpu profile's size each pass over a batch is a visible share of the step.
        mean, std = self.mean255.to(x.device), self.std255.to(x.device)
        return x.sub_(mean).div_(std) if inplace else (x - mean) / std


def resize_center_crop(x: Tensor, resolution: int, resize_to: int | None = None,
                       interpolation: TF.InterpolationMode = TF.InterpolationMode.BILINEAR) -> Tensor:
    """Resize the shorter side to ``resize_to`` (default ``resolution``; antialiased) and centre-crop a square of
    ``resolution``; a no-op where the images are that square already and nothing is cropped."""
    resize_to = resize_to or resolution
    if x.shape[-2:] == (resolution, resolution) and resize_to == resolution:
        return x
    x = TF.resize(x, [resize_to], interpolation=interpolation, antialias=True)  # one int: the shorter side
    return TF.center_crop(x, [resolution, resolution])


def _check_images(images: Tensor, who: str) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{who} expects uint8 [B, 3, H, W], got {images.dtype} {tuple(images.shape)}")


def _check_resolution(resolution: int) -> None:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")


class EvalTransform(nn.Module):
    """Evaluation: resize the shorter side to ``resolution`` (antialiased), centre-crop, normalise. Deterministic.

    What training evaluates with (crop_pct 1.0, bilinear). A model whose record says otherwise (a folder-trained one
    scored on an in-memory data set: crop_pct 0.875, bicubic) is given its own resize: :meth:`of`."""

    def __init__(self, *, resolution: int, mean: Sequence[float], std: Sequence[float], crop_pct: float = 1.0,
                 interpolation: str = "bilinear") -> None:
        super().__init__()
        _check_resolution(resolution)
        self.resolution = resolution
        self.resize_to = math.floor(resolution / crop_pct)
        self.interpolation = TF.InterpolationMode(interpolation)
        self.normalize = Normalize(mean, std)

    @classmethod
    def of(cls, preprocessing: Preprocessing) -> EvalTransform:
        return cls(resolution=preprocessing.resolution, mean=preprocessing.mean, std=preprocessing.std,
                   crop_pct=preprocessing.crop_pct, interpolation=preprocessing.interpolation)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}"

    def forward(self, images: Tensor) -> Tensor:
        _check_images(images, type(self).__name__)
        return self.normalize(resize_center_crop(images.float(), self.resolution, self.resize_to, self.interpolation))


def _sample_boxes(batch: int, height: int, width: int, scale: Sequence[float], ratio: Sequence[float], *,
                  fits, tries: int = 10) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per-sample random boxes as torchvision's RandomResizedCrop / RandomErasing draw them: up to `tries`
    draws of (area fraction in `scale`, log-uniform aspect in `ratio`), the first that `fits` (torch.le for
    crops, torch.lt for erasing) wins. Returns left, top, w, h and whether a box was found, each [batch]."""
    area = height * width
    target_area = area * torch.empty(batch, tries).uniform_(*scale)
    aspect = torch.exp(torch.empty(batch, tries).uniform_(math.log(ratio[0]), math.log(ratio[1])))
    w = torch.sqrt(target_area * aspect).round()
    h = torch.sqrt(target_area / aspect).round()
    valid = (w > 0) & fits(w, width) & (h > 0) & fits(h, height)
    first_valid = valid.int().argmax(dim=1, keepdim=True)  # argmax returns the first maximum
    found = valid.any(dim=1)
    w = w.gather(1, first_valid).squeeze(1)
    h = h.gather(1, first_valid).squeeze(1)
    top = torch.floor(torch.rand(batch) * (height - h + 1))
    left = torch.floor(torch.rand(batch) * (width - w + 1))
    return left, top, w, h, found


def sample_crop_boxes(batch: int, height: int, width: int, scale: Sequence[float]) -> Tensor:
    """torchvision's ``RandomResizedCrop.make_params``, vectorised over the batch: ``[batch, 5]`` rows of
    ``(sample index, left, top, right, bottom)``, the box format of ``roi_align``.

    Same distribution (10 tries of area-scale x log-uniform ratio, first valid one wins, else a centre crop
    clamped to the ratio range); all tries are drawn up front, so the RNG stream differs from the per-image loop.
    """
    left, top, w, h, found = _sample_boxes(batch, height, width, scale, CROP_RATIO, fits=torch.le)
    in_ratio = width / height
    if in_ratio < CROP_RATIO[0]:
        fw, fh = width, round(width / CROP_RATIO[0])
    elif in_ratio > CROP_RATIO[1]:
        fw, fh = round(height * CROP_RATIO[1]), height
    else:
        fw, fh = width, height
    w = torch.where(found, w, float(fw))
    h = torch.where(found, h, float(fh))
    top = torch.where(found, top, float((height - fh) // 2))
    left = torch.where(found, left, float((width - fw) // 2))
    batch_index = torch.arange(batch, dtype=torch.float32)
    return torch.stack([batch_index, left, top, left + w, top + h], dim=1)


class TrainAugment(nn.Module):
    """Training augmentation, per-sample parameters, batched: random-resized crop (or, with ``crop_scale=None``,
    the evaluation resize and centre crop) -> horizontal flip -> RandAugment -> normalise -> random erasing.

    ``crop_scale``: RandomResizedCrop's area-scale range, or None for no random crop. ``randaugment`` is the
    paper's "RandAugment (9, 0.5)": ``(magnitude M on timm's 0..10 scale, magnitude std)``, applied as the official
    code's timm ``rand-m{M}-mstd{std}-inc1`` (modernize.data.randaugment: per image two ops of timm's 15, each with
    probability 0.5, a magnitude drawn per op), its geometric ops resampled with ``interpolation`` (the recipe's).
    ``random_erasing``: the probability that a sample gets one box filled with zeros after normalisation, i.e. the
    mean colour (timm's ``re_mode='const'``; the official recipe's per-pixel noise is the folder pipeline's:
    docs/recipe.md says why the batched one keeps the mean).

    Randomness is drawn from torch's global *CPU* generator regardless of the images' device, so a run resumed
    from ``torch.get_rng_state()`` reproduces the same crops, flips and ops on CPU or GPU.
    """

    def __init__(self, *, resolution: int, mean: Sequence[float], std: Sequence[float],
                 crop_scale: tuple[float, float] | None = (0.08, 1.0), hflip: bool = True,
                 randaugment: tuple[float, float] | None = None, random_erasing: float = 0.0,
                 interpolation: str = "bicubic") -> None:
        super().__init__()
        _check_resolution(resolution)
        if crop_scale is not None and not (len(crop_scale) == 2 and 0 < crop_scale[0] <= crop_scale[1]):
            raise ValueError(f"crop_scale must be (low, high) with 0 < low <= high, or None; got {crop_scale}")
        if randaugment is not None and not (len(randaugment) == 2 and 0 <= randaugment[0] <= 10
                                            and randaugment[1] >= 0):
            raise ValueError(f"randaugment must be (magnitude in 0..10, std >= 0) or None; got {randaugment}")
        if not 0 <= random_erasing <= 1:
            raise ValueError(f"random_erasing is a probability in [0, 1], got {random_erasing}")
        self.resolution = resolution
        self.crop_scale = tuple(crop_scale) if crop_scale is not None else None
        self.hflip = hflip
        self.randaugment = tuple(randaugment) if randaugment is not None else None
        self.random_erasing = random_erasing
        self.normalize = Normalize(mean, std)
        # timm fills pixels uncovered by rotate/shear/translate with the data set's mean colour
        self._randaugment = (BatchedRandAugment(*self.randaugment, fill=[round(255 * m) for m in mean],
                                                interpolation=interpolation)
                             if self.randaugment is not None else None)

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, crop_scale={self.crop_scale}, hflip={self.hflip}, "
                f"randaugment={self._randaugment}, random_erasing={self.random_erasing}")

    def forward(self, images: Tensor) -> Tensor:
        # The order of the draws below is the RNG stream the committed results were made with: keep it.
        _check_images(images, type(self).__name__)
        if self.crop_scale is not None:
            x = self._random_resized_crop(images)
        else:
            x = resize_center_crop(images.float(), self.resolution)
        if self.hflip:
            flipped = (torch.rand(x.shape[0]) < 0.5).nonzero().flatten().to(x.device)
            x[flipped] = x[flipped].flip(-1)  # x is this call's own tensor: only the flipped half is touched
        if self.randaugment is not None:
            x = self._apply_randaugment(x.round().clamp_(0, 255).to(torch.uint8)).float()
        x = self.normalize(x, inplace=True)
        if self.random_erasing > 0:
            x = self._random_erase(x)
        return x

    def _random_resized_crop(self, images: Tensor) -> Tensor:
        """Per-sample RandomResizedCrop for the whole batch in one ``roi_align`` call."""
        batch, _, height, width = images.shape
        boxes = sample_crop_boxes(batch, height, width, self.crop_scale).to(images.device)
        # aligned=True puts pixel centres at +0.5, so a box [left, top, left+w, top+h] covers exactly
        # the crop's pixels; sampling_ratio=-1 averages ceil(crop/out) samples per output pixel,
        # which antialiases downscaled crops and is plain bilinear when upscaling.
        return torchvision.ops.roi_align(images.float(), boxes, output_size=self.resolution, spatial_scale=1.0,
                                         sampling_ratio=-1, aligned=True)

    def _random_erase(self, x: Tensor) -> Tensor:
        """torchvision's ``RandomErasing(p, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0)`` with one box
        per sample, as a single masked fill: calling the transform once per image made erasing the most
        expensive augmentation at the cpu profile's size (about a third of the augmentation time)."""
        batch, _, height, width = x.shape
        left, top, w, h, found = _sample_boxes(batch, height, width, ERASE_SCALE, ERASE_RATIO, fits=torch.lt)
        erase = found & (torch.rand(batch) < self.random_erasing)
        if not erase.any():  # the draws above are the RNG stream; at the proxies' small p most batches erase nothing
            return x
        rows, cols = torch.arange(height), torch.arange(width)
        in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # [B, H]
        in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # [B, W]
        mask = in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None]
        return x.masked_fill(mask[:, None].to(x.device), 0.0)

    def _apply_randaugment(self, x: Tensor) -> Tensor:
        return self._randaugment(x)
