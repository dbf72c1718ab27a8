"""The batched RandAugment of in-memory data sets (modernize.data.randaugment) against timm's rand-m9-mstd0.5-inc1, the
official code's: the same arguments per op, the same op on the same image up to resampling, the same policy
statistics; and the folder pipeline's posterize fix."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import auto_augment as timm_aa

from modernize.data.augment import posterize
from modernize.data.randaugment import OPS, BatchedRandAugment, apply_op, op_arguments
from helpers import photo

FILL = (124, 116, 104)  # timm's img_mean for ImageNet's mean
GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
PIL_MODES = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def as_tensor(images: list[Image.Image]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images])


def timm_argument(name: str, magnitude: float, negate: bool, monkeypatch) -> tuple:
    # timm's _randomly_negate negates when random.random() > 0.5
    monkeypatch.setattr(timm_aa.random, "random", lambda: 0.9 if negate else 0.1)
    level_fn = timm_aa.LEVEL_TO_ARG[name]
    return level_fn(magnitude, {"translate_const": 100}) if level_fn is not None else ()


def test_the_op_set_is_timms_inc1():
    assert OPS == tuple(timm_aa._RAND_INCREASING_TRANSFORMS)


@pytest.mark.parametrize("name", OPS)
def test_every_magnitude_gives_timms_argument(name, monkeypatch):
    magnitudes = [0.0, 0.3, 2.5, 4.99, 5.0, 7.7, 9.0, 9.62, 10.0]
    for negate in (False, True):
        ours = op_arguments(name, torch.tensor(magnitudes, dtype=torch.float64), torch.full((9,), negate)).tolist()
        theirs = [timm_argument(name, m, negate, monkeypatch) for m in magnitudes]
        if theirs[0] == ():
            continue  # the op takes no argument
        assert ours == pytest.approx([t[0] for t in theirs], abs=1e-12), (name, negate)


@pytest.mark.parametrize("name, interpolation", [(name, "bicubic") for name in OPS]
                         + [(name, "bilinear") for name in GEOMETRIC])  # interpolation matters to these only
def test_each_op_is_timms_on_the_same_images(name, interpolation, monkeypatch):
    """Ours and timm's PIL op on the same images with the same argument: pixel for pixel for the level ops; within
    a twentieth of the op's own change (plus rounding) where PIL's kernels and blends round otherwise."""
    images = [photo(64, 48, seed) for seed in range(6)]
    x = as_tensor(images)
    for negate in (False, True):
        argument = timm_argument(name, 9.0, negate, monkeypatch)
        theirs = as_tensor([timm_aa.NAME_TO_OP[name](im, *argument, fillcolor=FILL,
                                                     resample=PIL_MODES[interpolation]) for im in images]).float()
        ours = apply_op(name, x, op_arguments(name, torch.full((6,), 9.0), torch.full((6,), negate)), FILL,
                        interpolation).float()
        change = (theirs - x.float()).abs().mean()
        assert change > 1  # the op does something to these images
        assert (ours - theirs).abs().mean() <= 0.05 * change + 0.6, (name, negate)


def test_the_policy_matches_timms_statistically():
    """Over 400 images, three draws each: the share of images left unchanged (no op applied, or an op that changes
    nothing) and the mean absolute change per image agree with timm's RandAugment within their sampling noise."""
    images = [photo(40, 40, seed) for seed in range(400)]
    x = as_tensor(images)
    theirs_transform = timm_aa.rand_augment_transform(
        "rand-m9-mstd0.5-inc1", {"translate_const": 18, "img_mean": FILL, "interpolation": Image.BICUBIC})
    for op in theirs_transform.ops:  # Pillow >= 12 refuses 0 bits: the official runs' black image instead
        if op.name == "PosterizeIncreasing":
            op.aug_fn = posterize
    ours_transform = BatchedRandAugment(9, 0.5, fill=FILL)

    def stats(y: torch.Tensor) -> tuple[float, float]:
        change = (y.float() - x.float()).abs().flatten(1).mean(1)
        return (change == 0).float().mean().item(), change.mean().item()

    theirs, ours = [], []
    for trial in range(3):
        random.seed(trial)
        np.random.seed(trial)
        theirs.append(stats(as_tensor([theirs_transform(im) for im in images])))
        torch.manual_seed(trial)
        ours.append(stats(ours_transform(x)))
    unchanged_theirs, unchanged_ours = (np.mean([s[0] for s in v]) for v in (theirs, ours))
    change_theirs, change_ours = (np.mean([s[1] for s in v]) for v in (theirs, ours))
    # P(no op applied) = 1/4, plus the rare op that leaves an image as it was: standard error ~0.013 at 1200 images
    assert abs(unchanged_theirs - 0.25) < 0.06 and abs(unchanged_ours - unchanged_theirs) < 0.06
    assert abs(change_ours - change_theirs) < 0.1 * change_theirs


def test_each_image_draws_its_own_ops_half_of_them_applied():
    torch.manual_seed(0)
    layers = BatchedRandAugment(9, 0.5, fill=FILL).draw(20_000)
    applied = torch.stack([layer[1] for layer in layers]).sum(0)
    shares = torch.bincount(applied, minlength=3).float() / len(applied)
    assert torch.allclose(shares, torch.tensor([0.25, 0.5, 0.25]), atol=0.015)
    ops = torch.cat([layer[0] for layer in layers])
    assert torch.allclose(torch.bincount(ops, minlength=15).float() / len(ops), torch.full((15,), 1 / 15), atol=0.006)
    magnitude = torch.cat([layer[2] for layer in layers])
    assert magnitude.max() <= 10 and abs(magnitude.mean() - 9) < 0.02 and abs(magnitude.std() - 0.5) < 0.03
    negate = torch.cat([layer[3] for layer in layers]).float()
    assert abs(negate.mean() - 0.5) < 0.02


def test_identical_images_get_different_ops_and_a_seed_replays_them():
    x = as_tensor([photo(32, 32, 0)] * 16)
    augment = BatchedRandAugment(9, 0.5, fill=FILL)
    torch.manual_seed(3)
    first = augment(x)
    assert len({tuple(image.flatten().tolist()) for image in first}) > 8  # per image, not per batch or group
    torch.manual_seed(3)
    assert torch.equal(augment(x), first)


def test_the_folder_pipeline_posterizes_to_zero_bits_as_the_official_runs_did():
    """timm asks for 0 bits when a magnitude draw reaches 10; Pillow >= 12 raises there. Ours gives the black image
    that PIL gave the official runs (and that the batched op gives)."""
    from modernize.data.augment import folder_transforms
    from modernize.design.config import compose
    from modernize.training.proxy import effective_recipe

    recipe = effective_recipe(compose(["+step=recipe", "profile=imagenet", "recipe.randaugment=[10,0]"]))[1]
    train, _ = folder_transforms(recipe, resolution=32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    op = next(op for op in next(t for t in train.transforms if type(t).__name__ == "RandAugment").ops
              if op.name == "PosterizeIncreasing")
    op.prob = 1.0
    black = np.array(op(photo(32, 32, 0)))
    assert black.max() == 0
    batched = apply_op("PosterizeIncreasing", as_tensor([photo(32, 32, 0)]), torch.tensor([0.0]), FILL)
    assert batched.max() == 0
