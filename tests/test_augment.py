"""Tests for modernize.augment: the training augmentation, the evaluation transform and the builder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torchvision.transforms.v2 import functional as TF

from modernize.data.augment import EvalTransform, TrainAugment, build_augmentations, sample_crop_boxes

MEAN, STD = (0.5, 0.5, 0.5), (0.289, 0.289, 0.289)  # roughly the stats of uniform uint8 noise
RECIPES = Path(__file__).resolve().parents[1] / "conf" / "recipe"


def random_batch(n=8, size=28, seed=0):
    return torch.randint(
        0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
    )


def normalized(images: torch.Tensor) -> torch.Tensor:
    """What every pipeline ends with, written out: (x / 255 - mean) / std."""
    return (images.float() / 255 - 0.5) / 0.289


def same_per_sample(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[B] bool: sample i of a equals sample i of b up to float rounding."""
    return (a - b).abs().flatten(1).amax(1) < 1e-4


def plain(**kwargs) -> TrainAugment:
    """A train augmentation with every op off; tests switch on the one they look at."""
    args = {"resolution": 16, "mean": MEAN, "std": STD, "crop_scale": None, "hflip": False}
    return TrainAugment(**(args | kwargs))


# --------------------------------------------------------------------------------------------------
# Evaluation transform
# --------------------------------------------------------------------------------------------------


def test_eval_is_plain_normalize_at_native_size():
    images = random_batch()
    out = EvalTransform(resolution=28, mean=MEAN, std=STD)(images)
    assert out.shape == (8, 3, 28, 28) and out.dtype == torch.float32
    torch.testing.assert_close(out, normalized(images))


def test_eval_is_resize_center_crop_normalize_and_draws_no_randomness():
    images = random_batch(4, 20)
    aug = EvalTransform(resolution=32, mean=MEAN, std=STD)
    state = torch.get_rng_state()
    out = aug(images)
    assert torch.equal(torch.get_rng_state(), state)  # eval never moves the augmentation stream
    assert torch.equal(out, aug(images))
    expected = TF.center_crop(TF.resize(images.float(), [32], antialias=True), [32, 32])
    torch.testing.assert_close(out, (expected / 255 - 0.5) / 0.289)


def test_eval_center_crops_non_square():
    images = torch.zeros(2, 3, 20, 40, dtype=torch.uint8)
    # The central 20 columns survive the crop; 4 extra columns each side cover the antialias filter.
    images[..., 6:34] = 255
    out = EvalTransform(resolution=10, mean=MEAN, std=STD)(images)
    assert out.shape == (2, 3, 10, 10)
    torch.testing.assert_close(out, torch.full_like(out, 0.5 / 0.289))


# --------------------------------------------------------------------------------------------------
# Training augmentation, op by op
# --------------------------------------------------------------------------------------------------


def test_whole_image_crop_is_identity_or_mirror():
    # scale=(1, 1) leaves only the whole-image crop; roi_align at native size must then reproduce
    # the pixels exactly, and each sample is either unflipped or mirrored.
    images = random_batch(16, 12)
    train = TrainAugment(resolution=12, mean=MEAN, std=STD, crop_scale=(1.0, 1.0))
    ref = normalized(images)
    torch.manual_seed(0)
    out = train(images)
    same, mirrored = same_per_sample(out, ref), same_per_sample(out, ref.flip(-1))
    assert bool((same | mirrored).all()) and same.any() and mirrored.any()


def test_crop_boxes_follow_random_resized_crop_rules():
    torch.manual_seed(0)
    boxes = sample_crop_boxes(2000, 30, 40, (0.08, 1.0))
    left, top, right, bottom = boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    w, h = right - left, bottom - top
    assert torch.equal(boxes[:, 0], torch.arange(2000, dtype=torch.float32))
    assert (left >= 0).all() and (top >= 0).all() and (right <= 40).all() and (bottom <= 30).all()
    assert (w >= 1).all() and (h >= 1).all()
    assert torch.equal(boxes, boxes.round())  # integer pixel boxes, like torchvision
    area = w * h / (30 * 40)
    assert area.min() < 0.15 and area.max() > 0.9
    aspect = w / h
    assert aspect.min() > 3 / 4 - 0.1 and aspect.max() < 4 / 3 + 0.1  # up to integer rounding


def test_random_resized_crop_zooms_in():
    # A crop of part of the image, resized up to the full size, cannot be the whole image or its mirror.
    images = random_batch(16, 16)
    torch.manual_seed(0)
    out = plain(crop_scale=(0.1, 0.2))(images)
    ref = normalized(images)
    whole = torch.minimum((out - ref).abs().flatten(1).amax(1), (out - ref.flip(-1)).abs().flatten(1).amax(1))
    assert (whole > 0.5).all()


def test_flip_mirrors_exactly_the_samples_its_draw_picks():
    images = random_batch(32, 16)
    torch.manual_seed(5)
    expected = torch.rand(32) < 0.5  # the flip's only draw when nothing before it is random
    torch.manual_seed(5)
    out = plain(hflip=True)(images)
    ref = normalized(images)
    mirrored, untouched = same_per_sample(out, ref.flip(-1)), same_per_sample(out, ref)
    assert torch.equal(mirrored, expected) and torch.equal(untouched, ~expected)
    assert 0 < expected.sum() < 32


def test_random_erasing_zeroes_one_rectangle_in_some_samples():
    images = torch.full((64, 3, 16, 16), 255, dtype=torch.uint8)
    torch.manual_seed(0)
    out = plain(random_erasing=0.5)(images)
    zero = (out == 0).all(1)  # [B, H, W]: erased pixels are 0 (the mean colour) in every channel
    erased = zero.flatten(1).any(1)
    assert 12 < erased.sum() < 52  # about half
    assert torch.allclose(out[~erased], torch.tensor(0.5 / 0.289))  # the others are untouched
    for mask in zero[erased]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        box = torch.zeros_like(mask)
        box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
        assert torch.equal(mask, box)  # one filled rectangle ...
        # ... of at most RandomErasing's largest area, plus the rounding of each side to whole pixels
        assert mask.sum() <= 0.33 * 256 + 0.5 * (16 + 16) + 0.25
    outside = ~zero[:, None].expand_as(out)
    assert torch.allclose(out[outside], torch.tensor(0.5 / 0.289))  # pixels outside the box are untouched


def test_randaugment_changes_images_and_stays_on_uint8_levels():
    images = random_batch(64, 16)
    torch.manual_seed(0)
    out = plain(randaugment=(9, 0.5))(images)
    changed = ~same_per_sample(out, normalized(images))
    assert changed.float().mean() > 0.6  # a quarter of the samples draw no op (timm: each op with p = 0.5)
    levels = (out * 0.289 + 0.5) * 255  # RandAugment runs on uint8: the output holds whole levels 0..255
    assert torch.allclose(levels, levels.round(), atol=1e-3)
    assert levels.min() > -1e-3 and levels.max() < 255 + 1e-3


@pytest.mark.parametrize("randaugment, erasing", [(None, 0.0), ((9, 0.5), 0.25)])
def test_train_is_random_but_reproducible(randaugment, erasing):
    images = random_batch(20, 28)
    aug = TrainAugment(resolution=32, mean=MEAN, std=STD, randaugment=randaugment, random_erasing=erasing)
    torch.manual_seed(123)
    first = aug(images)
    second = aug(images)
    torch.manual_seed(123)
    replay = aug(images)
    assert first.shape == (20, 3, 32, 32) and first.dtype == torch.float32
    assert not torch.equal(first, second)
    assert torch.equal(first, replay)
    if randaugment is None:  # bilinear crops keep the mean; values stay in the normalised range
        assert abs(first.mean().item()) < 0.1
        assert first.min() >= -0.5 / 0.289 - 1e-4 and first.max() <= 0.5 / 0.289 + 1e-4


def test_train_augmentation_ignores_module_eval_mode():
    # Whether to augment is fixed per object: a parent's .eval() must not silently switch it off.
    images = random_batch(8, 16)
    aug = TrainAugment(resolution=16, mean=MEAN, std=STD)
    torch.nn.Sequential(aug).eval()
    torch.manual_seed(0)
    in_eval = aug(images)
    aug.train()
    torch.manual_seed(0)
    assert torch.equal(in_eval, aug(images)) and not torch.allclose(in_eval, normalized(images))


# --------------------------------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------------------------------


def recipe(name: str, **overrides):
    return OmegaConf.merge(OmegaConf.load(RECIPES / f"{name}.yaml"), overrides)


def test_build_from_modern_recipe_in_memory():
    train, evaluate = build_augmentations(recipe("modern"), resolution=32, mean=MEAN, std=STD, loader_transforms=False)
    assert isinstance(train, TrainAugment) and isinstance(evaluate, EvalTransform)
    assert train.crop_scale == (0.08, 1.0) and train.hflip
    assert train.randaugment == (9, 0.5) and train.random_erasing == 0.25
    assert evaluate.resolution == train.resolution == 32


def test_build_from_original_recipe_has_no_randaugment_or_erasing():
    train, _ = build_augmentations(recipe("original"), resolution=32, mean=MEAN, std=STD, loader_transforms=False)
    assert train.crop_scale == (0.08, 1.0) and train.hflip
    assert train.randaugment is None and train.random_erasing == 0.0


def test_build_when_the_loader_transforms_leaves_the_batches_as_they_come():
    # Folder data: the loader workers ran the official per-image pipeline (augment.folder_transforms), so the
    # images arrive augmented and normalised, and the device adds nothing.
    train, evaluate = build_augmentations(recipe("modern"), resolution=16, mean=MEAN, std=STD, loader_transforms=True)
    batch = torch.randn(4, 3, 16, 16)
    assert torch.equal(train(batch), batch) and torch.equal(evaluate(batch), batch)


def test_build_follows_the_recipe_switches():
    r = recipe("modern", random_resized_crop=False, hflip=False, randaugment=None, random_erasing=0.0)
    train, evaluate = build_augmentations(r, resolution=16, mean=MEAN, std=STD, loader_transforms=False)
    images = random_batch(4, 20)
    torch.manual_seed(0)
    assert torch.equal(train(images), evaluate(images))  # every op off: train is the eval transform


def test_build_rejects_a_recipe_without_augmentation_keys():
    with pytest.raises(ValueError, match="random_resized_crop_scale"):
        build_augmentations({"random_resized_crop": True, "hflip": True, "randaugment": None, "random_erasing": 0},
                            resolution=16, mean=MEAN, std=STD, loader_transforms=False)


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [EvalTransform(resolution=8, mean=MEAN, std=STD), plain(resolution=8)])
@pytest.mark.parametrize("images", [torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.uint8)])
def test_rejects_anything_but_uint8_rgb_batches(module, images):
    with pytest.raises(ValueError, match=r"uint8 \[B, 3, H, W\]"):
        module(images)


@pytest.mark.parametrize("kwargs, message", [
    ({"resolution": 0}, "resolution"),
    ({"crop_scale": (0.5, 0.1)}, "crop_scale"),
    ({"crop_scale": (0.0, 1.0)}, "crop_scale"),
    ({"randaugment": (11, 0.5)}, "randaugment"),
    ({"randaugment": (9, -1)}, "randaugment"),
    ({"random_erasing": 1.5}, "random_erasing"),
    ({"std": (0.2, 0.0, 0.2)}, "std"),
    ({"mean": (0.5,)}, "mean"),
])
def test_bad_settings_raise_naming_the_setting(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plain(**kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_randomness():
    images = random_batch(16, 28)
    aug = TrainAugment(resolution=32, mean=MEAN, std=STD, randaugment=(9, 0.5), random_erasing=0.25)
    torch.manual_seed(7)
    cpu = aug(images)
    torch.manual_seed(7)
    gpu = aug.cuda()(images.cuda())
    assert gpu.is_cuda and gpu.shape == cpu.shape
    # Same draws on both devices; kernels differ slightly and uint8 rounding can flip a level.
    assert (gpu.cpu() - cpu).abs().mean() < 0.05


def test_flip_and_normalize_touch_only_the_augments_own_tensor_and_give_the_textbook_images():
    """The flip writes only the flipped images and normalisation works in place on the augment's own float copy:
    the images are those of where(flip, x.flip(-1), x) then (x - mean) / std, from the same draw, and the caller's
    batch is left as it was."""
    augment = TrainAugment(resolution=8, mean=(0.2, 0.3, 0.4), std=(0.5, 0.6, 0.7), crop_scale=None, hflip=True)
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    before = images.clone()
    torch.manual_seed(0)
    out = augment(images)
    torch.manual_seed(0)
    flip = (torch.rand(16) < 0.5).view(-1, 1, 1, 1)
    x = images.float()
    expected = (torch.where(flip, x.flip(-1), x) - augment.normalize.mean255) / augment.normalize.std255
    assert torch.equal(out, expected) and 0 < int(flip.sum()) < 16
    assert torch.equal(images, before)
