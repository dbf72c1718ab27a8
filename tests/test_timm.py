"""Every model of Figure 2 through timm's own API: create_model builds what build_model builds, features_only gives
one map per stage, and the registered pretrained_cfg gives the recipe's eval transform through timm's own
resolve_data_config and create_transform."""

from __future__ import annotations

import pytest
import torch

import modernize  # noqa: F401 -- registers the names
from modernize.design.timm_models import model_overrides

from helpers import fast_tier

NAMES = sorted(model_overrides())
# The registry's names differ in their design, not in the code a forward pass runs: each is checked at the cpu
# profile's width (timm's kwargs reach every ModelSpec field), a quarter of the paper's, which builds and runs about
# 10x faster; the paper-scale models are checked against the paper's numbers in tests/test_roadmap.py.
NARROW = {"width_multiplier": 0.25}


def test_every_roadmap_step_and_kernel_size_is_registered():
    import timm

    from modernize import STEPS

    assert set(timm.list_models("modernize_*")) == set(NAMES)
    assert {f"modernize_{s}" for s in STEPS} | {f"modernize_kernel_size_k{k}" for k in (3, 5, 7, 9, 11)} == set(NAMES)


@pytest.mark.parametrize("name", fast_tier(NAMES))
def test_create_model_builds_what_build_model_builds(name):
    import timm

    from modernize.design.config import compose, model_spec
    from modernize.design.model import build

    torch.manual_seed(0)
    ours = build(model_spec(compose(model_overrides()[name]), num_classes=7, drop_path_rate=0.05, **NARROW)).eval()
    theirs = timm.create_model(name, num_classes=7, drop_path_rate=0.05, **NARROW).eval()
    assert theirs.spec == ours.spec  # the same design, with timm's keyword arguments applied
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(theirs(x), ours(x))
        features = theirs.forward_features(x)
        assert torch.equal(theirs.forward_head(features), ours(x))
        assert theirs.forward_head(features, pre_logits=True).shape == (2, theirs.num_features)
    theirs.reset_classifier(0)
    assert theirs.get_classifier.__self__ is theirs and theirs(x).shape == (2, theirs.num_features)


@pytest.mark.parametrize("name", fast_tier(NAMES))
def test_features_only_gives_each_stage_with_its_channels_and_reduction(name):
    import timm

    backbone = timm.create_model(name, features_only=True, out_indices=(0, 1, 2, 3), **NARROW)
    maps = backbone(torch.randn(1, 3, 64, 64))
    channels = backbone.feature_info.channels()
    assert backbone.feature_info.reduction() == [4, 8, 16, 32]
    assert [m.shape[1] for m in maps] == channels and [m.shape[-1] for m in maps] == [16, 8, 4, 2]
    model = timm.create_model(name, **NARROW)
    assert channels == [info["num_chs"] for info in model.feature_info] and channels[-1] == model.num_features
    assert len(timm.create_model(name, features_only=True, out_indices=(2, 3), **NARROW)(torch.randn(1, 3, 64, 64))) \
        == 2


@pytest.mark.parametrize("name", fast_tier(NAMES))
def test_the_registered_eval_settings_are_the_composed_recipe_s(name):
    import timm
    from timm.data import resolve_data_config

    from modernize.design.config import compose

    recipe = compose(model_overrides()[name]).recipe
    registered = timm.models.get_pretrained_cfg(name).to_dict()
    config = resolve_data_config({}, model=timm.create_model(name, **NARROW))
    assert registered["interpolation"] == config["interpolation"] == recipe.interpolation
    assert config["input_size"] == (3, 224, 224) and config["crop_pct"] == 0.875
    assert config["mean"] == (0.485, 0.456, 0.406) and config["std"] == (0.229, 0.224, 0.225)


@pytest.mark.parametrize("name", ["modernize_resnet50", "modernize_separate_downsampling"])
def test_timm_s_transform_from_the_config_equals_ours_on_real_size_images(name):
    import timm
    from timm.data import create_transform, resolve_data_config

    from helpers import photo
    from modernize.data.augment import folder_transforms
    from modernize.data.datasets import MEAN_STD
    from modernize.design.config import compose

    theirs = create_transform(**resolve_data_config({}, model=timm.create_model(name)))
    mean, std = MEAN_STD["imagefolder"]
    _, ours = folder_transforms(compose(model_overrides()[name]).recipe, resolution=224, mean=mean, std=std)
    for size in ((500, 375), (375, 500), (640, 480)):
        image = photo(*size, seed=sum(size))
        assert (theirs(image) - ours(image)).abs().max() <= 1e-3


def test_the_readme_block_runs():
    """README's "Use the models elsewhere" block, as a user pastes it (from the checkout's root)."""
    import os
    import re

    from helpers import ROOT

    section = (ROOT / "README.md").read_text().split("## Use the models elsewhere", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        os.chdir(here)
    assert [m.shape[1] for m in namespace["maps"]] == namespace["backbone"].feature_info.channels()
    assert namespace["config"]["interpolation"] == "bicubic" and namespace["model"].num_classes == 10


@pytest.mark.parametrize("step", fast_tier(["resnet50", "gelu", "separate_downsampling"], ["separate_downsampling"]))
def test_timm_s_model_interface_is_complete(step):
    """What every model in timm's registry has: head_hidden_size, forward_intermediates (timm's signature),
    prune_intermediate_layers, set_grad_checkpointing (real: the same gradients), pretrained_cfg naming real modules,
    torch.jit.script and torch.export."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model(f"modernize_{step}", num_classes=5, width_multiplier=0.125, drop_path_rate=0.0).eval()
    cfg = model.pretrained_cfg
    assert isinstance(model.get_submodule(cfg["first_conv"]), torch.nn.Conv2d)
    assert model.get_submodule(cfg["classifier"]) is model.get_classifier()
    assert model.head_hidden_size == model.num_features == model.get_classifier().in_features
    x = torch.randn(2, 3, 64, 64)
    final, intermediates = model.forward_intermediates(x)
    assert [t.shape[1] for t in intermediates] == [info["num_chs"] for info in model.feature_info]
    assert torch.equal(final, model.forward_features(x))
    last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
    assert [t.shape for t in last_two] == [t.shape for t in intermediates[-2:]]
    model.train()
    plain = torch.autograd.grad(model(x).sum(), model.stem.conv.weight)[0]
    model.set_grad_checkpointing(True)
    checkpointed = torch.autograd.grad(model(x).sum(), model.stem.conv.weight)[0]
    assert torch.allclose(plain, checkpointed, rtol=1e-4, atol=1e-5)
    model.eval()
    program = torch.export.export(model, (x,))
    assert torch.allclose(program.module()(x), model(x), atol=1e-5)
    assert torch.equal(torch.jit.script(model)(x), model(x))
    assert model.prune_intermediate_layers(indices=[0, 1]) == [0, 1] and len(model.stages) == 2
