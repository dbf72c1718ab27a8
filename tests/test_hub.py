"""torch.hub.load(<this checkout>, <entry>, source="local") for every entry of hubconf.py, with weights= files."""

from __future__ import annotations

import pytest
import torch

from helpers import REPRESENTATIVE_STEPS, ROOT, fast_tier
from modernize.design.timm_models import model_overrides

STEP_ENTRIES = sorted(name.removeprefix("modernize_") for name in model_overrides())
VARIANTS = ["convnext_t", "convnext_s", "convnext_b", "convnext_l", "convnext_xl"]


def hub_load(name, **kwargs):
    return torch.hub.load(str(ROOT), name, source="local", trust_repo=True, **kwargs)


def test_the_hub_lists_every_step_kernel_size_and_variant():
    """What torch.hub.list shows for a repository: hubconf's public callables (it lists GitHub repositories only)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    entries = [name for name in dir(hubconf) if callable(getattr(hubconf, name)) and not name.startswith("_")]
    assert sorted(entries) == sorted(STEP_ENTRIES + VARIANTS + ["exported"])  # exported: python -m modernize.export


@pytest.mark.parametrize("name", fast_tier(STEP_ENTRIES + VARIANTS, REPRESENTATIVE_STEPS))
def test_every_entry_builds_the_paper_s_model_of_its_config(name):
    from modernize.design.config import compose, model_spec

    overrides = [f"model={name}"] if name in VARIANTS else model_overrides()[f"modernize_{name}"]
    with torch.device("meta"):  # the spec is what is compared: no weights needed (ConvNeXt-XL's would take 4 s)
        model = hub_load(name, num_classes=5)
    assert model.spec == model_spec(compose(overrides), num_classes=5)


def test_official_weights_give_the_reference_model_s_logits(tmp_path):
    import timm

    from modernize.design.export import timm_to_official

    torch.manual_seed(0)
    reference = timm.create_model("convnext_tiny").eval()
    torch.save({"model": timm_to_official(reference.state_dict())}, tmp_path / "official.pth")
    model = hub_load("convnext_t", weights=tmp_path / "official.pth").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max() <= 1e-5


@pytest.mark.parametrize("make, expected", [
    (lambda d: d / "missing.pth", "does not exist or is not a file"),
    (lambda d: (d / "cut.pth").write_bytes(b"PK\x03\x04 truncated") and d / "cut.pth",
     "is not a readable PyTorch checkpoint"),
    (lambda d: torch.save(__import__("torchvision").models.resnet18().state_dict(), d / "r18.pth") or d / "r18.pth",
     "weights="),
])
def test_a_bad_weights_file_is_one_line(tmp_path, make, expected):
    with pytest.raises(ValueError) as e:
        hub_load("convnext_t", weights=make(tmp_path))
    assert expected in str(e.value) and "\n" not in str(e.value)
