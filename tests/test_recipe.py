"""The paper's recipes as the official code trains them (docs/recipe.md): the folder pipeline against the official
code's timm / torchvision transforms, gradient accumulation against the large batch, the EMA rule, per-rank loader
seeds, and the configs' settings."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from helpers import photo

from modernize.data.augment import folder_transforms
from modernize.design.config import compose
from modernize.training.identity import config_hash
from modernize.data.datasets import MEAN_STD
from modernize.training.proxy import PAPER_STEPS, ema_decay, effective_recipe

IMAGENET_MEAN, IMAGENET_STD = MEAN_STD["imagefolder"]


def recipe_at(step: str, *overrides: str) -> dict:
    return effective_recipe(compose([f"+step={step}", "profile=imagenet", *overrides]))[1]


REAL_SIZES = [(500, 375, 0), (375, 500, 1), (640, 480, 2), (256, 256, 3)]


# ------------------------------------------------------------------------------------------ evaluation transforms
@pytest.mark.parametrize("width,height,seed", REAL_SIZES)
def test_modern_eval_transform_is_the_official_one(width, height, seed):
    """The official datasets.py: Resize(int(224 / 0.875), BICUBIC), CenterCrop(224), ToTensor, Normalize, which is
    also timm's create_transform(is_training=False, crop_pct=0.875, interpolation='bicubic')."""
    from timm.data import create_transform

    _, ours = folder_transforms(recipe_at("separate_downsampling"), resolution=224, mean=IMAGENET_MEAN,
                                std=IMAGENET_STD)
    timm_eval = create_transform(224, is_training=False, crop_pct=0.875, interpolation="bicubic",
                                 mean=IMAGENET_MEAN, std=IMAGENET_STD)
    image = photo(width, height, seed)
    a, b = ours(image), timm_eval(image)
    assert a.shape == b.shape == (3, 224, 224)
    assert (a - b).abs().max() <= 1e-3


@pytest.mark.parametrize("width,height,seed", REAL_SIZES)
def test_original_eval_transform_is_torchvisions_reference(width, height, seed):
    """torchvision's references/classification presets.ClassificationPresetEval (PIL backend): Resize(256,
    BILINEAR, antialias), CenterCrop(224), PILToTensor, ToDtype(float, scale), Normalize."""
    from torchvision.transforms import v2

    _, ours = folder_transforms(recipe_at("resnet50"), resolution=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    reference = v2.Compose([v2.Resize(256, interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
                            v2.CenterCrop(224), v2.PILToTensor(), v2.ToDtype(torch.float, scale=True),
                            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    image = photo(width, height, seed)
    assert (ours(image) - reference(image)).abs().max() <= 1e-3


def test_the_eval_transforms_differ_by_their_interpolation():
    """The check above would pass for either interpolation if the image had no detail: this one has."""
    image = photo(500, 375, 0)
    modern = folder_transforms(recipe_at("separate_downsampling"), resolution=224, mean=IMAGENET_MEAN,
                               std=IMAGENET_STD)[1](image)
    original = folder_transforms(recipe_at("resnet50"), resolution=224, mean=IMAGENET_MEAN,
                                 std=IMAGENET_STD)[1](image)
    assert (modern - original).abs().max() > 0.05


# -------------------------------------------------------------------------------------------- training transforms
def official_train_transform():
    """The official ConvNeXt datasets.py build_transform(is_train=True) with main.py's defaults for ConvNeXt-T."""
    from timm.data import create_transform

    return create_transform(input_size=224, is_training=True, color_jitter=0.4, auto_augment="rand-m9-mstd0.5-inc1",
                            interpolation="bicubic", re_prob=0.25, re_mode="pixel", re_count=1,
                            mean=IMAGENET_MEAN, std=IMAGENET_STD)


def seeded(transform, image, seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return transform(image)


def test_modern_training_transform_is_the_official_one_draw_for_draw():
    """Same seeds, same images: our training pipeline at profile=imagenet gives exactly the official one's output
    (crop, flip, RandAugment ops and magnitudes, erasing noise)."""
    ours, _ = folder_transforms(recipe_at("separate_downsampling"), resolution=224, mean=IMAGENET_MEAN,
                                std=IMAGENET_STD)
    official = official_train_transform()
    for seed in range(6):
        image = photo(*REAL_SIZES[seed % 4][:2], seed)
        assert torch.equal(seeded(ours, image, seed), seeded(official, image, seed))


def test_modern_training_transform_has_the_official_settings():
    ours, _ = folder_transforms(recipe_at("separate_downsampling"), resolution=224, mean=IMAGENET_MEAN,
                                std=IMAGENET_STD)
    names = [type(t).__name__ for t in ours.transforms]
    assert "ColorJitter" not in names  # the official --color_jitter 0.4 is inert next to RandAugment
    crop, erasing = ours.transforms[0], ours.transforms[-1]
    assert crop.scale == (0.08, 1.0) and str(crop.interpolation).lower().endswith("bicubic")
    assert erasing.probability == 0.25 and erasing.mode == "pixel" and erasing.max_count == 1
    randaugment = ours.transforms[names.index("RandAugment")]
    assert randaugment.num_layers == 2 and len(randaugment.ops) == 15
    assert {op.name for op in randaugment.ops} >= {"Invert", "SolarizeAdd", "PosterizeIncreasing"}
    assert all(op.prob == 0.5 and op.magnitude == 9 and op.magnitude_std == 0.5 for op in randaugment.ops)


def test_original_training_transform_is_torchvisions_reference():
    """torchvision's own RandomResizedCrop(224) bilinear and antialiased, flip, to tensor, normalise: nothing else (no
    RandAugment, no erasing), as its reference's ClassificationPresetTrain (recipe.pipeline: torchvision)."""
    from torchvision import transforms as T

    ours, _ = folder_transforms(recipe_at("resnet50"), resolution=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert [type(t) for t in ours.transforms] == [T.RandomResizedCrop, T.RandomHorizontalFlip, T.ToTensor,
                                                 T.Normalize]
    crop = ours.transforms[0]
    assert crop.scale == (0.08, 1.0) and crop.interpolation == T.InterpolationMode.BILINEAR and crop.antialias
    assert crop.size == (224, 224) and ours.transforms[1].p == 0.5


def test_a_torchvision_pipeline_with_timms_augmentations_is_refused():
    from modernize.training.checks import check_recipe
    from modernize.training.runtime import RunError

    cfg = compose(["+step=recipe", "recipe.pipeline=torchvision"])
    with pytest.raises(RunError, match="recipe.pipeline=torchvision has no RandAugment or random erasing"):
        check_recipe(cfg.recipe)


def test_a_budget_scaled_randaugment_keeps_its_float_magnitude():
    r = recipe_at("recipe", "profile.epochs=100", "profile.regularization_rule=budget")
    assert r["randaugment"] == [3.0, pytest.approx(1 / 6)]
    r["randaugment"] = [4.5, 0.25]
    ours, _ = folder_transforms(r, resolution=64, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    ops = next(t for t in ours.transforms if type(t).__name__ == "RandAugment").ops
    assert all(op.magnitude == 4.5 and op.magnitude_std == 0.25 for op in ops)


# ------------------------------------------------------------------------------------------------------ configs
def test_the_recipes_say_what_the_official_code_does():
    modern, original = recipe_at("separate_downsampling"), recipe_at("resnet50")
    assert modern["interpolation"] == "bicubic" and modern["random_erasing_mode"] == "pixel"
    assert modern["ema_decay"] == 0.9999 and modern["randaugment"] == [9, 0.5]
    # torchvision's reference: StepLR(step_size=30, gamma=0.1) over 90 epochs decays at 30 and 60, not at 80
    assert original["milestones"] == [30, 60] and original["gamma"] == 0.1 and original["epochs"] == 90
    assert original["interpolation"] == "bilinear" and original["ema_decay"] is None


def test_the_original_schedule_decays_at_30_and_60_like_steplr():
    from modernize.training.recipe import make_scheduler

    cfg = compose(["+step=resnet50", "profile=imagenet"])
    model = torch.nn.Linear(2, 2)
    optimizers = [torch.optim.SGD(model.parameters(), lr=0.1) for _ in range(2)]
    ours = make_scheduler(optimizers[0], cfg.recipe, 90, 1)
    reference = torch.optim.lr_scheduler.StepLR(optimizers[1], 30, 0.1)
    for _ in range(90):
        assert ours.get_last_lr() == pytest.approx(reference.get_last_lr())
        for scheduler in (ours, reference):
            scheduler.optimizer.step()
            scheduler.step()


def test_ema_rules():
    cfg = compose(["+step=recipe", "profile=gpu"])
    assert ema_decay(compose(["profile=imagenet"]).profile, 0.9999, 93_600) == 0.9999
    assert ema_decay(compose(["profile=cpu"]).profile, 0.9999, 2808) is None
    # the horizon rule keeps the EMA's share of the run: 10k of the paper's 93.6k steps
    gpu_steps = 100 * (60_000 // 256)
    decay = ema_decay(cfg.profile, 0.9999, gpu_steps)
    assert 1 / (1 - decay) / gpu_steps == pytest.approx(1e4 / PAPER_STEPS)
    assert ema_decay(cfg.profile, 0.9999, 5) is None  # a run shorter than its horizon's share
    assert ema_decay(cfg.profile, None, gpu_steps) is None  # the original recipe has none


def test_the_hash_covers_what_is_trained():
    """Settings a run does not use stay out of its hash (so adding them left every committed run's hash as it was);
    settings it uses are in it."""
    def hashed(*overrides):
        return config_hash(compose(["+step=recipe", *overrides]))

    # in-memory data at the cpu profile: no RandAugment, so interpolation and erasing fill are not used; no EMA
    assert hashed() == hashed("recipe.interpolation=bilinear") == hashed("recipe.random_erasing_mode=const")
    assert hashed() == hashed("recipe.ema_decay=0.999") == hashed("train.accumulation_steps=2")
    assert hashed() != hashed("profile.ema_rule=paper")
    folder = ("data=imagefolder", "data.root=/tmp")
    assert hashed(*folder) != hashed(*folder, "recipe.interpolation=bilinear")
    assert hashed(*folder) != hashed(*folder, "recipe.random_erasing_mode=const")
    gpu = ("profile=gpu",)  # RandAugment on the device: its interpolation is used
    assert hashed(*gpu) != hashed(*gpu, "recipe.interpolation=bilinear")


# ----------------------------------------------------------------------------------------------- per-rank seeds
def test_each_rank_draws_its_own_augmentations_from_one_shared_order(tmp_path):
    from modernize.data.datasets import load_data, make_loader
    from files import write_imagefolder

    write_imagefolder(tmp_path, per_class=4)
    data = load_data("imagefolder", tmp_path, resolution=16, recipe=recipe_at("separate_downsampling"))
    ranks = [make_loader(data.train, 4, shuffle=True, workers=1, distributed=False, seed=7, drop_last=True, rank=r)
             for r in (0, 1)]
    first = [next(iter(loader))[0] for loader in ranks]
    assert not torch.equal(first[0], first[1])  # worker seeds differ: seed + rank
    again = make_loader(data.train, 4, shuffle=True, workers=1, distributed=False, seed=7, drop_last=True, rank=0)
    assert torch.equal(next(iter(again))[0], first[0])  # and each is reproducible


# ------------------------------------------------------------------------------------------ gradient accumulation
def _step_pair(accumulation_steps: int, device: str = "cpu"):
    """A LayerNorm ConvNeXt (no BatchNorm, no drop path) and an SGD step, identical for every call. SGD, because
    its update is linear in the gradient: Adam's m / sqrt(v) turns float noise in a near-zero gradient into a full
    +-lr step, which would test Adam's conditioning, not the accumulation."""
    from modernize.training.proxy import run_spec
    from modernize.training.engine import TrainStep, make_scaler
    from modernize.design.model import build

    cfg = compose(["+step=separate_downsampling", "profile=smoke", "model.drop_path_rate=0.0"])
    torch.manual_seed(0)
    model = build(run_spec(cfg, num_classes=10)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, TrainStep(forward=model, model=model, criterion=torch.nn.CrossEntropyLoss(label_smoothing=0.1),
                            optimizer=optimizer, scaler=make_scaler(device, "fp32"),
                            accumulation_steps=accumulation_steps)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def test_two_accumulated_batches_of_32_are_one_batch_of_64(device):
    """The official --update_freq: an optimizer step on 2 x 32 images equals one on 64, for a model without
    BatchNorm, to float rounding (soft Mixup-style targets, as the modern recipe trains)."""
    if device == "cuda":
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # compare fp32 with fp32
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(64, 3, 32, 32, generator=generator).to(device)
    targets = torch.softmax(torch.randn(64, 10, generator=generator), dim=1).to(device)
    (one, step_one), (two, step_two) = _step_pair(1, device), _step_pair(2, device)
    for _ in range(3):
        loss_one, loss_two = step_one(inputs, targets), step_two(inputs, targets)
        assert loss_two.item() == pytest.approx(loss_one.item(), rel=1e-5)
        for (name, a), b in zip(one.named_parameters(), two.parameters()):
            assert torch.allclose(a.grad, b.grad, rtol=1e-3, atol=1e-3 * a.grad.abs().max().item() + 1e-9), name
    for (name, a), b in zip(one.named_parameters(), two.parameters()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), name
    assert any(not torch.equal(a, b) for a, b in zip(one.parameters(), two.parameters()))  # two real code paths


@pytest.mark.slow  # trains twice: 11 s, the slowest of the in-process tier
def test_accumulation_only_splits_the_batch(tmp_path):
    """A run with train.accumulation_steps=2 trains on the same global batch and lr (and the same config hash) as
    one without; its summary says how the batch was split. (Mixup/CutMix off: with them each micro-batch draws its
    own, as the official loop does: test_mixing_is_drawn_per_micro_batch.)"""
    from modernize.training.train import train

    base = ["+step=separate_downsampling", "profile=smoke", "data=synthetic", "data.size=256", "train.device=cpu",
            "train.threads=1", "train.deterministic=true", "logger.wandb.mode=disabled", "profile.epochs=1",
            "model.drop_path_rate=0.0", "recipe.mixup=0", "recipe.cutmix=0"]
    one = train(compose(base), tmp_path / "one")
    two = train(compose([*base, "train.accumulation_steps=2"]), tmp_path / "two")
    assert (one["accumulation_steps"], one["micro_batch"]) == (1, 64)
    assert (two["accumulation_steps"], two["micro_batch"]) == (2, 32)
    assert two["global_batch"] == one["global_batch"] and two["lr"] == one["lr"]
    assert two["config_hash"] == one["config_hash"]
    assert two["final_top1"] == pytest.approx(one["final_top1"], abs=2.0)  # 16 images of 64: a flip or two


def test_a_run_of_the_modern_recipe_evaluates_its_ema(tmp_path):
    from modernize.training.train import train

    summary = train(compose(["+step=recipe", "profile=smoke", "data=synthetic", "data.size=256", "train.device=cpu",
                             "train.threads=1", "logger.wandb.mode=disabled", "profile.epochs=1"]), tmp_path)
    assert summary["ema_decay"] == 0.9999  # the smoke profile keeps the paper's rule
    assert {"ema_final_top1", "ema_final_top5", "ema_best_top1"} <= set(summary)


def test_task_profile_shows_the_recipe_as_the_profile_trains_it(capsys):
    from modernize.training.cli import profile

    paper = profile(compose(["+step=separate_downsampling", "profile=imagenet"]))["recipe"]
    assert (paper["run_epochs"], paper["batch_size"], paper["lr"], paper["ema_decay"]) == (300, 4096, 4e-3, 0.9999)
    assert paper["randaugment"] == [9, 0.5] and paper["interpolation"] == "bicubic"
    assert paper["layer_scale_init"] == 1e-6
    cpu = profile(compose(["+step=separate_downsampling", "train.accumulation_steps=2"]))["recipe"]
    assert cpu["run_epochs"] == 6 and cpu["randaugment"] is None and cpu["ema_decay"] is None
    assert cpu["mixup"] == pytest.approx(0.8 * 6 / 300) and cpu["layer_scale_init"] == 0.1
    assert cpu["accumulation_steps"] == 2
    out = capsys.readouterr().out
    assert "recipe modern at profile=imagenet" in out and "EMA 0.9999" in out and "no EMA" in out


def test_mixing_is_drawn_per_micro_batch():
    """Under accumulation each micro-batch gets its own Mixup lambda, as the official loop calls mixup_fn on each
    loader batch under --update_freq; without it, one lambda for the batch (the committed runs' draws)."""
    from torch import nn
    from torchvision.transforms import v2

    from modernize.training.engine import prepare_batch

    images = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 3, 2, 2).contiguous()
    labels = torch.arange(8) % 4
    mixup = v2.MixUp(alpha=0.8, num_classes=4)

    def lambdas(micro_batches):
        torch.manual_seed(0)
        _, targets = prepare_batch(images, labels, nn.Identity(), mixup, torch.contiguous_format, micro_batches)
        own = targets[torch.arange(8), labels]  # each image's share of its own label: lambda (or 1 - lambda ...)
        return [round(v, 6) for v in own.tolist()]

    assert len(set(lambdas(1))) == 1
    halves = lambdas(2)
    assert len(set(halves[:4])) == 1 and len(set(halves[4:])) == 1 and halves[0] != halves[4]


def test_the_warmup_differs_from_the_official_cosine_scheduler_only_within_its_first_steps():
    """docs/recipe.md's warmup row: the official utils.cosine_scheduler is np.linspace(0, lr, W) per iteration, then
    lr_min + (lr - lr_min)(1 + cos(pi i / (T - W))) / 2; ours LinearLR from 1e-3 lr to lr over W steps, then
    CosineAnnealingLR. They differ by at most lr (1e-3 + 1/W) during warmup and agree after it."""
    import math

    import numpy as np

    from modernize.training.recipe import make_scheduler

    recipe = compose(["+step=separate_downsampling"]).recipe
    steps_per_epoch, lr = 10, float(recipe.lr)
    total, warmup = recipe.epochs * steps_per_epoch, recipe.warmup_epochs * steps_per_epoch
    official = np.concatenate([np.linspace(0, lr, warmup), [
        recipe.min_lr + 0.5 * (lr - recipe.min_lr) * (1 + math.cos(math.pi * i / (total - warmup)))
        for i in range(total - warmup)]])
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(optimizer, recipe, recipe.epochs, steps_per_epoch)
    ours = []
    for _ in range(total):
        ours.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    ours = np.array(ours)
    assert np.abs(ours[:warmup] - official[:warmup]).max() <= lr * (1e-3 + 1 / warmup)
    assert np.allclose(ours[warmup:], official[warmup:], rtol=1e-6, atol=1e-12)
