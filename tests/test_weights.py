"""Tests for modernize.weights: published architectures' checkpoints load into our builder, same outputs.

No downloads and no mocks: the reference models (torchvision's ResNet/ConvNeXt, timm's ConvNeXt) are built
with random weights, perturbed so that no layer is an identity (BatchNorm statistics, LayerNorm affines and a
layer scale of order 1 instead of 1e-6, which would hide any error inside a block), converted, loaded, and
compared output for output in eval mode.
"""

from __future__ import annotations

import re

import pytest
import torch
import torchvision
from torch import nn

from modernize.design.export import timm_to_official
from modernize import build, build_model, compose
from modernize.design.config import model_spec
from modernize.design.weights import (
    convert_convnext,
    convert_torchvision_resnet,
    detect_source,
    load_pretrained,
    unwrap_state_dict,
)

ATOL = 1e-5
RESNET50_PARAMS = 25_557_032
CONVNEXT_PARAMS = {"convnext_t": 28_589_128, "convnext_s": 50_223_688, "convnext_b": 88_591_464}


@pytest.fixture(scope="module")
def timm():
    return pytest.importorskip("timm")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights that make every layer matter: non-trivial norms, biases and layer scales."""
    g = torch.Generator().manual_seed(seed)

    def rand(t, scale=1.0, shift=0.0):
        t.copy_(torch.randn(t.shape, generator=g) * scale + shift)

    batch_norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for module in batch_norms:
        rand(module.weight, 0.1, 1.0)
        rand(module.bias, 0.1)
        module.reset_running_stats()
        module.momentum = None  # cumulative average: one batch sets the running statistics to its own
    if batch_norms:
        # statistics of real activations keep the outputs of order 1 (random ones blow a ResNet up); then
        # perturb them so that a swapped or dropped buffer still shows
        model.train()(torch.randn(4, 3, 64, 64, generator=g))
        for module in batch_norms:
            module.running_mean.mul_(1 + 0.1 * torch.randn(module.running_mean.shape, generator=g))
            module.running_var.mul_(1 + 0.1 * torch.rand(module.running_var.shape, generator=g))
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):  # timm's and torchvision's LayerNorm2d subclass it
            rand(module.weight, 0.1, 1.0)
            rand(module.bias, 0.1)
        elif isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
            rand(module.bias, 0.02)
    for name, p in model.named_parameters():
        if name.endswith(("gamma", "layer_scale")):  # ConvNeXt's layer scale, initialized to 1e-6
            rand(p, 0.5)
    return model.eval()


def assert_same_outputs(ours: nn.Module, reference: nn.Module, size: int = 128) -> None:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = reference.eval()(x), ours.eval()(x)
    assert got.shape == expected.shape == (2, 1000)
    assert expected.std() > 0.05, "reference outputs are too small for the tolerance to mean anything"
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def meta_model(overrides: list[str], **changes):
    with torch.device("meta"):
        return build(model_spec(compose(overrides), **changes))


# --------------------------------------------------------------------------------------------------
# ResNet-50 step == torchvision's resnet50
# --------------------------------------------------------------------------------------------------


def test_step_resnet50_is_exactly_torchvisions_resnet50():
    reference = randomize_(torchvision.models.resnet50(weights=None))
    ours = build_model("resnet50")
    assert n_params(ours) == n_params(reference) == RESNET50_PARAMS

    converted = convert_torchvision_resnet(reference.state_dict())
    assert sorted(converted) == sorted(ours.state_dict()), "BN buffers included, nothing left over"
    missing, unexpected = load_pretrained(ours, reference.state_dict())
    assert missing == [] and unexpected == []
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in converted.items())
    assert_same_outputs(ours, reference)


@pytest.mark.parametrize("name,depths", [("resnet101", (3, 4, 23, 3)), ("resnet152", (3, 8, 36, 3))])
def test_deeper_torchvision_resnets_map_onto_the_builder(name, depths):
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)(weights=None)
    ours = meta_model(["+step=resnet50"], depths=depths)
    converted = convert_torchvision_resnet(reference.state_dict())
    own = ours.state_dict()
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in own.items()}
    assert n_params(ours) == n_params(reference)


def test_basic_block_resnet_is_rejected_with_a_reason():
    with torch.device("meta"):
        resnet18 = torchvision.models.resnet18(weights=None)
    with pytest.raises(ValueError, match="basic blocks"):
        convert_torchvision_resnet(resnet18.state_dict())


# --------------------------------------------------------------------------------------------------
# separate_downsampling step == the official ConvNeXt-T (timm's port, the official key layout, torchvision's)
# --------------------------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def timm_convnext_tiny(timm):
    return randomize_(timm.create_model("convnext_tiny", pretrained=False))


def test_step_separate_downsampling_is_exactly_the_official_convnext_t(timm_convnext_tiny):
    reference = timm_convnext_tiny
    ours = build_model("separate_downsampling")
    assert n_params(ours) == n_params(reference) == CONVNEXT_PARAMS["convnext_t"]

    converted = convert_convnext(reference.state_dict())
    assert sorted(converted) == sorted(ours.state_dict())
    assert converted["stages.0.blocks.0.branch.pw1.weight"].shape == (384, 96, 1, 1)
    load_pretrained(ours, reference.state_dict())
    assert_same_outputs(ours, reference, size=224)


def test_official_checkpoint_layout_loads_from_a_file(timm, timm_convnext_tiny, tmp_path):
    timm_sd = timm_convnext_tiny.state_dict()
    official = timm_to_official(timm_sd)
    # our reconstruction of the official names is what timm's own FB-checkpoint filter reads
    from timm.models.convnext import checkpoint_filter_fn
    back = checkpoint_filter_fn({"model": official}, timm_convnext_tiny)
    assert back.keys() == timm_sd.keys() and all(torch.equal(back[k], timm_sd[k]) for k in timm_sd)
    assert official["stages.0.0.pwconv1.weight"].ndim == 2  # nn.Linear in the official code

    path = tmp_path / "convnext_tiny_1k_224_ema.pth"
    torch.save({"model": official, "epoch": 299}, path)  # the official checkpoints' wrapper
    ours = build_model("separate_downsampling")
    load_pretrained(ours, path)
    assert_same_outputs(ours, timm_convnext_tiny, size=224)


def test_torchvision_convnext_tiny_layout():
    reference = randomize_(torchvision.models.convnext_tiny(weights=None))
    ours = build_model("separate_downsampling")
    assert n_params(reference) == CONVNEXT_PARAMS["convnext_t"]
    load_pretrained(ours, reference.state_dict(), source="convnext")
    assert_same_outputs(ours, reference)


@pytest.mark.parametrize("name", ["convnext_s", "convnext_b"])
def test_larger_convnexts_match_timm(timm, name):
    ours = meta_model([f"model={name}"])
    assert n_params(ours) == CONVNEXT_PARAMS[name]
    timm_name = {"convnext_s": "convnext_small", "convnext_b": "convnext_base"}[name]
    with torch.device("meta"):
        reference = timm.create_model(timm_name, pretrained=False)
    assert n_params(reference) == CONVNEXT_PARAMS[name]
    shapes = {k: tuple(v.shape) for k, v in convert_convnext(reference.state_dict()).items()}
    assert shapes == {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    official = convert_convnext(timm_to_official(reference.state_dict()))
    assert {k: tuple(v.shape) for k, v in official.items()} == shapes


# --------------------------------------------------------------------------------------------------
# Detection, unwrapping and errors
# --------------------------------------------------------------------------------------------------


def test_detection_and_unwrapping(timm_convnext_tiny):
    sd = timm_convnext_tiny.state_dict()
    assert detect_source(sd) == "convnext"
    assert detect_source(timm_to_official(sd)) == "convnext"
    with torch.device("meta"):
        assert detect_source(torchvision.models.resnet50().state_dict()) == "torchvision_resnet"
    own = build_model("separate_downsampling").state_dict()
    assert detect_source(own) == "modernize"
    wrapped = {"state_dict": {f"module.{k}": v for k, v in own.items()}, "optimizer": {}}
    assert unwrap_state_dict(wrapped).keys() == own.keys()
    with pytest.raises(ValueError, match="cannot tell which model"):
        detect_source({"encoder.weight": torch.zeros(1)})


def test_mismatched_checkpoint_names_source_and_keys(timm_convnext_tiny):
    resnet = build_model("resnet50")
    with pytest.raises(ValueError) as info:
        load_pretrained(resnet, timm_convnext_tiny.state_dict())
    message = str(info.value)
    assert "source='convnext' (detected)" in message
    assert "missing key(s)" in message and "stages.0.blocks.0.branch.pw1_norm.weight" in message
    assert "unexpected key(s)" in message and "stages.0.blocks.0.layer_scale.gamma" in message

    with pytest.raises(ValueError, match=r"source='torchvision_resnet'.*no place in modernize's model"):
        load_pretrained(resnet, timm_convnext_tiny.state_dict(), source="torchvision_resnet")


def test_unmapped_source_key_is_named(timm_convnext_tiny):
    sd = dict(timm_convnext_tiny.state_dict())
    sd["stages.0.blocks.0.mlp.grn.weight"] = torch.zeros(384)  # ConvNeXt V2, which the builder cannot express
    with pytest.raises(ValueError, match=re.escape("'stages.0.blocks.0.mlp.grn.weight'")):
        convert_convnext(sd)
    tv = torchvision.models.resnet50(weights=None).state_dict()
    tv["fc.extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match=re.escape("'fc.extra'")):
        convert_torchvision_resnet(tv)


def test_shape_mismatch_and_non_strict(timm):
    ours = build_model("separate_downsampling")
    ten_classes = timm.create_model("convnext_tiny", pretrained=False, num_classes=10).state_dict()
    mismatch = r"shape mismatch.*head\.fc\.weight: checkpoint \(10, 768\) vs model \(1000, 768\)"
    with pytest.raises(ValueError, match=mismatch):
        load_pretrained(ours, ten_classes)
    with pytest.raises(ValueError, match="source must be one of"):
        load_pretrained(ours, ten_classes, source="timm")

    without_head = {k: v for k, v in ten_classes.items() if not k.startswith("head.fc.")}
    result = load_pretrained(ours, without_head, strict=False)
    assert sorted(result.missing_keys) == ["head.fc.bias", "head.fc.weight"] and not result.unexpected_keys
    with pytest.raises(ValueError, match="missing key"):
        load_pretrained(ours, without_head)
