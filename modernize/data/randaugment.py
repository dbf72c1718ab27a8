"""RandAugment as the official ConvNeXt code applies it (timm's ``rand-m9-mstd0.5-inc1``), batched on the device for
the in-memory data sets (augment.TrainAugment). Folder data sets use timm's own per-image transform in their loader
workers (augment.folder_transforms); this module gives the batched path the same semantics:

* per image, ``num_layers`` (2) ops drawn uniformly with replacement from timm's 15 "increasing" ops (its inc1 set:
  with Invert and SolarizeAdd, without Identity), each applied with probability ``prob`` (0.5): 0, 1 or 2 ops per
  image with probability 1/4, 1/2, 1/4 (timm auto_augment.py: RandAugment.__call__, AugmentOp.__call__);
* per applied op its own magnitude N(M, std) clipped to [0, 10], and for signed ops a random sign (timm's
  ``random.gauss`` and ``_randomly_negate``);
* timm's level-to-argument mappings (:func:`op_arguments`, tested equal to timm's for every op), e.g. at M=9:
  rotate 27 deg, shear 0.27, translate 0.405 of the side, enhance 1 +- 0.81, posterize to 1 bit, solarize above 26;
* its fill (the data set's mean colour) and the recipe's interpolation for the geometric ops.

The ops are PIL's, rewritten as batched tensor ops with a per-image argument. What differs, and is measured in
tests/test_randaugment.py against timm's PIL ops on the same images: the geometric ops resample with
``grid_sample`` (PyTorch's bicubic kernel, a = -0.75, against PIL's a = -0.5), and rounding inside PIL's enhance
blends. Every draw comes from torch's global *CPU* generator in a fixed order, so a resumed run replays the same ops
on any device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F
from torchvision.transforms.v2 import functional as TF

# timm auto_augment.py _RAND_INCREASING_TRANSFORMS, in its order
OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd",
       "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY",
       "TranslateXRel", "TranslateYRel")
LEVEL_DENOM = 10.0  # timm's _LEVEL_DENOM: M is on a 0..10 scale


def op_arguments(name: str, magnitude: Tensor, negate: Tensor) -> Tensor:
    """timm's LEVEL_TO_ARG for op `name`, vectorised (float64, as Python's floats): magnitudes [N] in [0, 10] and
    whether to negate each signed argument [N] -> the op's argument [N]."""
    level = magnitude.double() / LEVEL_DENOM
    sign = torch.where(negate, -1.0, 1.0).double()
    if name == "Rotate":
        return level * 30.0 * sign
    if name in ("ShearX", "ShearY"):
        return level * 0.3 * sign
    if name in ("TranslateXRel", "TranslateYRel"):
        return level * 0.45 * sign
    if name.endswith("Increasing") and name[:-len("Increasing")] in ("Color", "Contrast", "Brightness", "Sharpness"):
        return (1.0 + level * 0.9 * sign).clamp(min=0.1)
    if name == "PosterizeIncreasing":
        return 4 - torch.floor(level * 4)  # bits kept: 4 down to 0
    if name == "SolarizeIncreasing":
        return 256 - torch.floor(level * 256).clamp(max=256)  # threshold: 256 (no change) down to 0
    if name == "SolarizeAdd":
        return torch.floor(level * 110).clamp(max=128)
    return torch.zeros_like(level)  # AutoContrast, Equalize, Invert take none


# ------------------------------------------------------------------------------------------------ the ops
# Each: (uint8 images [n, 3, H, W], float64 arguments [n] on the images' device, fill [3], interpolation) -> uint8.
def _to_uint8(x: Tensor) -> Tensor:
    return x.round().clamp_(0, 255).to(torch.uint8)


def _per_image(values: Tensor, x: Tensor) -> Tensor:
    return values.to(device=x.device, dtype=torch.float32).view(-1, 1, 1, 1)


def _grayscale(x: Tensor) -> Tensor:
    """PIL's convert("L"): L = R * 299/1000 + G * 587/1000 + B * 114/1000, rounded; [n, 1, H, W] float."""
    r, g, b = x.float().unbind(1)
    return (r * 0.299 + g * 0.587 + b * 0.114).round().unsqueeze(1)


def _blend(degenerate: Tensor, x: Tensor, factor: Tensor) -> Tensor:
    """PIL's ImageEnhance: Image.blend(degenerate, image, factor) = degenerate + factor * (image - degenerate)."""
    return _to_uint8(degenerate + _per_image(factor, x) * (x.float() - degenerate))


def _autocontrast(x: Tensor, *_) -> Tensor:
    """PIL ImageOps.autocontrast (cutoff 0): per channel, map [min, max] to [0, 255] (int() of the scaled level)."""
    flat = x.flatten(2).float()
    low, high = flat.amin(2)[..., None, None], flat.amax(2)[..., None, None]
    scale = 255.0 / (high - low).clamp(min=1)
    stretched = torch.floor((x.float() - low) * scale).clamp(0, 255)
    return torch.where(high > low, stretched, x.float()).to(torch.uint8)


def _equalize(x: Tensor, *_) -> Tensor:
    return TF.equalize(x)  # torchvision's tensor equalize follows PIL's ImageOps.equalize


def _invert(x: Tensor, *_) -> Tensor:
    return 255 - x


def _posterize(x: Tensor, bits: Tensor, *_) -> Tensor:
    mask = (255 << (8 - bits.long())) & 255  # bits 0 keeps nothing (PIL: a black image)
    return x & mask.to(device=x.device, dtype=torch.uint8).view(-1, 1, 1, 1)


def _solarize(x: Tensor, threshold: Tensor, *_) -> Tensor:
    return torch.where(x.float() >= _per_image(threshold, x), 255 - x, x)


def _solarize_add(x: Tensor, add: Tensor, *_) -> Tensor:
    return torch.where(x < 128, _to_uint8(x.float() + _per_image(add, x)), x)


def _color(x: Tensor, factor: Tensor, *_) -> Tensor:
    return _blend(_grayscale(x), x, factor)


def _contrast(x: Tensor, factor: Tensor, *_) -> Tensor:
    mean = torch.floor(_grayscale(x).mean(dim=(1, 2, 3), keepdim=True) + 0.5)  # PIL: int(mean + 0.5)
    return _blend(mean, x, factor)


def _brightness(x: Tensor, factor: Tensor, *_) -> Tensor:
    return _blend(torch.zeros((), device=x.device), x, factor)


def _sharpness(x: Tensor, factor: Tensor, *_) -> Tensor:
    """PIL's SMOOTH filter ([[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13, the border kept) as the degenerate image."""
    kernel = torch.ones(3, 3, device=x.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(3, 1, 3, 3)
    smooth = x.float().clone()
    smooth[..., 1:-1, 1:-1] = F.conv2d(x.float(), kernel, groups=3).round()
    return _blend(smooth, x, factor)


def _affine(x: Tensor, matrices: Tensor, fill: Tensor, interpolation: str) -> Tensor:
    """PIL's Image.transform(AFFINE) per image: `matrices` [n, 2, 3] map output pixel coordinates (centres at
    +0.5) to input ones; pixels from outside the image get `fill`."""
    n, _, height, width = x.shape
    to_unit = torch.tensor([[2.0 / width, 0, -1], [0, 2.0 / height, -1], [0, 0, 1]], dtype=torch.float64)
    full = torch.cat([matrices.cpu(), torch.tensor([[[0.0, 0, 1]]], dtype=torch.float64).expand(n, 1, 3)], dim=1)
    theta = (to_unit @ full @ torch.linalg.inv(to_unit))[:, :2].float().to(x.device)
    grid = F.affine_grid(theta, [n, 4, height, width], align_corners=False)
    with_coverage = torch.cat([x.float(), torch.ones(n, 1, height, width, device=x.device)], dim=1)
    sampled = F.grid_sample(with_coverage, grid, mode=interpolation, padding_mode="zeros", align_corners=False)
    coverage = sampled[:, 3:].clamp(0, 1)
    return _to_uint8(sampled[:, :3] + (1 - coverage) * fill.to(x.device).view(1, 3, 1, 1))


def _rotation(degrees: Tensor, width: int, height: int) -> Tensor:
    """PIL's Image.rotate(degrees): counter-clockwise about the image centre."""
    angle = -torch.deg2rad(degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    cx, cy = width / 2.0, height / 2.0
    return torch.stack([torch.stack([cos, sin, cx - cos * cx - sin * cy], 1),
                        torch.stack([-sin, cos, cy + sin * cx - cos * cy], 1)], 1)


def _pil_affine(entries: Callable[[Tensor, int, int], tuple[Tensor, ...]]):
    """The [n, 2, 3] matrices of PIL's AFFINE data (a, b, c, d, e, f) that `entries` gives for the arguments."""
    def matrices(argument: Tensor, width: int, height: int) -> Tensor:
        a, b, c, d, e, f = entries(argument, width, height)
        return torch.stack([torch.stack([a, b, c], 1), torch.stack([d, e, f], 1)], 1)
    return matrices


def _ones(t: Tensor) -> Tensor:
    return torch.ones_like(t)


def _zeros(t: Tensor) -> Tensor:
    return torch.zeros_like(t)


# The geometric ops as their output-to-input matrices (arguments on the CPU, float64): one grid_sample serves all
# of a layer's geometric ops at once. timm: shear_x (1, f, 0, 0, 1, 0), shear_y (1, 0, 0, f, 1, 0),
# translate_*_rel by pct * the side in pixels, rotate about the centre.
GEOMETRIC: dict[str, Callable[[Tensor, int, int], Tensor]] = {
    "Rotate": _rotation,
    "ShearX": _pil_affine(lambda t, w, h: (_ones(t), t, _zeros(t), _zeros(t), _ones(t), _zeros(t))),
    "ShearY": _pil_affine(lambda t, w, h: (_ones(t), _zeros(t), _zeros(t), t, _ones(t), _zeros(t))),
    "TranslateXRel": _pil_affine(lambda t, w, h: (_ones(t), _zeros(t), t * w, _zeros(t), _ones(t), _zeros(t))),
    "TranslateYRel": _pil_affine(lambda t, w, h: (_ones(t), _zeros(t), _zeros(t), _zeros(t), _ones(t), t * h)),
}


OP_FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "AutoContrast": _autocontrast, "Equalize": _equalize, "Invert": _invert,
    "PosterizeIncreasing": _posterize, "SolarizeIncreasing": _solarize, "SolarizeAdd": _solarize_add,
    "ColorIncreasing": _color, "ContrastIncreasing": _contrast, "BrightnessIncreasing": _brightness,
    "SharpnessIncreasing": _sharpness,
}


def apply_op(name: str, x: Tensor, argument: Tensor, fill: Sequence[float], interpolation: str = "bicubic") -> Tensor:
    """One op on a batch, each image with its own argument (as op_arguments gives it)."""
    fill_tensor = torch.tensor(fill, dtype=torch.float32)
    if name in GEOMETRIC:
        return _affine(x, GEOMETRIC[name](argument.cpu(), x.shape[-1], x.shape[-2]), fill_tensor, interpolation)
    return OP_FUNCTIONS[name](x, argument, fill_tensor, interpolation)


class BatchedRandAugment:
    """timm's RandAugment(rand-m{M}-mstd{std}-inc1) on a uint8 batch, every image drawing its own ops."""

    def __init__(self, magnitude: float, magnitude_std: float, *, fill: Sequence[float],
                 interpolation: str = "bicubic", num_layers: int = 2, prob: float = 0.5):
        if interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"interpolation must be bilinear or bicubic, got {interpolation!r}")
        if not (0 <= magnitude <= LEVEL_DENOM and 0 <= magnitude_std < math.inf):
            raise ValueError(f"RandAugment needs a magnitude in [0, 10] and a finite std >= 0, got "
                             f"{magnitude}, {magnitude_std}")
        self.magnitude, self.magnitude_std = float(magnitude), float(magnitude_std)
        self.fill, self.interpolation = [float(v) for v in fill], interpolation
        self.num_layers, self.prob = num_layers, prob

    def __repr__(self) -> str:
        return (f"BatchedRandAugment(m={self.magnitude:g}, mstd={self.magnitude_std:g}, n={self.num_layers}, "
                f"p={self.prob:g}, ops=inc1 ({len(OPS)}), {self.interpolation})")

    def draw(self, batch: int) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Per layer: (op index, applied, magnitude, negate), each [batch], from the global CPU generator."""
        layers = []
        for _ in range(self.num_layers):
            op = torch.randint(len(OPS), (batch,))
            applied = torch.rand(batch) < self.prob  # timm: skipped when random.random() > prob
            magnitude = torch.full((batch,), self.magnitude, dtype=torch.float64)
            if self.magnitude_std > 0:
                magnitude = magnitude + self.magnitude_std * torch.randn(batch, dtype=torch.float64)
            negate = torch.rand(batch) > 0.5  # timm's _randomly_negate
            layers.append((op, applied, magnitude.clamp(0, LEVEL_DENOM), negate))
        return layers

    def __call__(self, x: Tensor) -> Tensor:
        if x.dtype != torch.uint8:
            raise ValueError(f"RandAugment works on uint8 images, got {x.dtype}")
        x = x.clone()  # written in place below; the caller's images stay as they were
        height, width = x.shape[-2:]
        fill = torch.tensor(self.fill, dtype=torch.float32)
        for op, applied, magnitude, negate in self.draw(x.shape[0]):
            # An image gets one op per layer, so the ops of a layer touch disjoint images: their order is free, and
            # the geometric ones share one resampling (their matrices concatenated).
            warped, matrices = [], []
            for k, name in enumerate(OPS):
                chosen = (applied & (op == k)).nonzero().flatten()
                if len(chosen) == 0:
                    continue
                argument = op_arguments(name, magnitude[chosen], negate[chosen])
                if name in GEOMETRIC:
                    warped.append(chosen)
                    matrices.append(GEOMETRIC[name](argument, width, height))
                    continue
                index = chosen.to(x.device)
                x[index] = OP_FUNCTIONS[name](x[index], argument, fill, self.interpolation)
            if warped:
                index = torch.cat(warped).to(x.device)
                x[index] = _affine(x[index], torch.cat(matrices), fill, self.interpolation)
        return x
