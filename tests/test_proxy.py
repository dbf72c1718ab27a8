"""The proxy's rules (modernize.training.proxy): what a profile changes, and what it must never change."""

import pytest
import torch

from modernize import compose
from modernize.design.config import model_spec
from modernize.design.flops import count_gflops, count_params
from modernize.design.model import build
from modernize.training.proxy import (cait_layer_scale, crop_scale, describe, effective_recipe, run_epochs,
                             run_spec, scale_regularization)


def cfg(step="separate_downsampling", *overrides):
    return compose([f"+step={step}", *overrides])


def test_the_cpu_profile_never_changes_the_papers_model():
    # params and GFLOPs at 224 are the paper's model whatever the profile does to the trained one
    for profile in ("cpu", "smoke", "gpu"):
        spec = model_spec(cfg("separate_downsampling", f"profile={profile}", "profile.stem_stride_divisor=2"))
        assert count_params(build(spec)) == 28_589_128
        assert spec.block.layer_scale_init == 1e-6 and spec.drop_path_rate == 0.1 and spec.stem.stride == 4


def test_budget_rule_scales_every_regularizer_with_the_fraction_of_the_schedule_trained():
    modern = cfg("recipe").recipe
    scaled = scale_regularization(dict(modern), 1 / 3)  # "ResNet strikes back" A3's share of 300 epochs
    assert scaled["mixup"] == pytest.approx(0.8 / 3) and scaled["cutmix"] == pytest.approx(1 / 3)
    assert scaled["random_erasing"] == pytest.approx(0.25 / 3)
    assert scaled["randaugment"] == pytest.approx([3.0, 0.5 / 3])
    assert scale_regularization(dict(modern), 1.0)["mixup"] == 0.8  # the paper's budget: the paper's recipe
    # below magnitude 0.5 only RandAugment's magnitude-free ops would remain: it is dropped
    assert scale_regularization(dict(modern), 0.05)["randaugment"] is None


def test_the_cpu_profile_trains_both_recipes_the_same_epochs_with_light_regularization():
    modern = cfg("separate_downsampling")
    original = cfg("resnet50")
    assert run_epochs(modern.profile, modern.recipe) == run_epochs(original.profile, original.recipe) == 6
    epochs, recipe = effective_recipe(modern)
    assert recipe["mixup"] == pytest.approx(0.8 * 6 / 300) and recipe["randaugment"] is None
    assert recipe["random_resized_crop"] is False  # 8% of a 32-px image is a 9x9 patch: off by the pixel rule
    spec = run_spec(modern, num_classes=10)
    assert spec.drop_path_rate == pytest.approx(0.1 * 6 / 300)
    assert spec.block.layer_scale_init == 0.1  # CaiT's rule for ConvNeXt-T's 18 blocks


def test_recipe_ratio_keeps_the_papers_300_to_90():
    c = cfg("resnet50", "profile.epoch_rule=recipe_ratio", "profile.epochs=30")
    assert run_epochs(c.profile, c.recipe) == 9
    c = cfg("recipe", "profile.epoch_rule=recipe_ratio", "profile.epochs=30")
    assert run_epochs(c.profile, c.recipe) == 30


def test_the_pixel_rule_keeps_the_papers_smallest_crop_in_pixels():
    assert crop_scale((0.08, 1.0), 224) == pytest.approx((0.08, 1.0))
    assert crop_scale((0.08, 1.0), 64) == pytest.approx((0.98, 1.0))
    assert crop_scale((0.08, 1.0), 32) is None


def test_cait_layer_scale_follows_depth():
    assert cait_layer_scale(18) == 0.1 and cait_layer_scale(24) == 1e-5 and cait_layer_scale(36) == 1e-6


@pytest.mark.parametrize("step", ["resnet50", "separate_downsampling"])
def test_halving_the_stem_stride_keeps_the_last_stage_at_2x2_for_both_stems(step):
    c = cfg(step, "profile.stem_stride_divisor=2")
    model = build(run_spec(c, num_classes=10)).eval()
    assert model.spec.stem.stride == 2
    assert "pool" not in dict(model.stem.named_children())  # the ResNet stem loses its max-pool, patchify halves
    with torch.no_grad():
        assert model.forward_features(torch.zeros(1, 3, 32, 32)).shape[-2:] == (2, 2)
        default = build(run_spec(cfg(step), num_classes=10)).eval()
        assert default.forward_features(torch.zeros(1, 3, 32, 32)).shape[-2:] == (1, 1)
    # the same model otherwise: 4x the FLOPs of the trained model, same blocks
    assert count_gflops(model, 32) > 3 * count_gflops(default, 32)


def test_a_bad_rule_name_is_refused_naming_what_is_allowed():
    from modernize.training.train import RunError, check_config

    with pytest.raises(RunError, match="profile.crop_rule must be one of paper, pixels"):
        check_config(cfg("resnet50", "profile.crop_rule=tiny"))
    with pytest.raises(RunError, match="stem.stride_divisor must be one of 1, 2, 4"):
        check_config(cfg("resnet50", "profile.stem_stride_divisor=3"))


def test_summary_says_what_the_profile_changed():
    c = cfg("separate_downsampling")
    described = describe(c, run_spec(c, num_classes=10))
    assert described["epochs"] == 6 and described["stem_stride"] == 4 and described["layer_scale_init"] == 0.1
    assert described["regularization_rule"] == "budget" and described["random_resized_crop"] is False
