"""Every model of Figure 2 in timm's registry: `timm.create_model("modernize_<step>")`, registered when modernize is
imported, through timm's own `register_model` and `build_model_with_cfg` (so `features_only=True`, `out_indices`,
`num_classes`, `drop_path_rate`, `pretrained_cfg_overlay=dict(file=...)` work as for timm's own models).

    import modernize, timm
    model = timm.create_model("modernize_inverted_bottleneck", num_classes=10, drop_path_rate=0.1)
    backbone = timm.create_model("modernize_gelu", features_only=True, out_indices=(1, 2, 3))

Names: one per roadmap step (`modernize.design.roadmap.STEPS`) and one per kernel size of Figure 2's kernel sweep on
the `kernel_size` step (`modernize_kernel_size_k3` ... `_k11`). Each builds exactly what `build_model(step)` builds
(the paper's full-width model), with the keyword arguments applied to its spec. Its `pretrained_cfg` carries the
eval transform of the recipe the step trains with (modernize/data/augment.py folder_transforms): 224 px, ImageNet
mean/std, crop_pct 0.875, bicubic for the modern recipe and bilinear for the original (the `resnet50` step).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

PREFIX = "modernize_"
CROP_PCT = 0.875  # the official datasets.py's 224 / 256, torchvision's reference's 256 -> 224
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def model_overrides() -> dict[str, list[str]]:
    """{timm name: the Hydra overrides of its model}: every roadmap step, and the kernel sweep's sizes."""
    from .roadmap import STEPS, paper

    names = {f"{PREFIX}{step}": [f"+step={step}"] for step in STEPS}
    for row in paper()["kernel_size_sweep"]:
        k = row["kernel"]
        names[f"{PREFIX}kernel_size_k{k}"] = ["+step=kernel_size", f"model.block.kernel_size={k}"]
    return names


def pretrained_cfg(interpolation: str, num_classes: int = 1000) -> dict[str, Any]:
    mean, std = IMAGENET_MEAN_STD
    return {"url": "", "num_classes": num_classes, "input_size": (3, 224, 224), "pool_size": (7, 7),
            "crop_pct": CROP_PCT, "interpolation": interpolation, "mean": mean, "std": std,
            "first_conv": "stem.conv", "classifier": "head.fc", "license": "mit"}


def spec_and_interpolation(overrides: list[str]):
    """The composed model's spec (the paper's) and its recipe's interpolation."""
    from .config import compose, model_spec

    cfg = compose(overrides)
    return model_spec(cfg), str(cfg.recipe.interpolation)


def network_from(cfg, num_classes: int | None = None, drop_path_rate: float | None = None, in_chans: int | None = None,
                 **unused: Any):
    """The Network of a spec (`cfg`, as timm's build_model_with_cfg names it) with timm's keyword arguments applied;
    refuses the ones it cannot honour."""
    from .model import Network

    unknown = {k: v for k, v in unused.items() if v is not None}
    if unknown:
        raise TypeError(f"modernize models take num_classes, drop_path_rate and in_chans; got {sorted(unknown)}")
    changes = {k: v for k, v in (("num_classes", num_classes), ("drop_path_rate", drop_path_rate),
                                 ("in_chans", in_chans)) if v is not None}
    return Network(replace(cfg, **changes))


def _entrypoint(name: str, overrides: list[str]):
    def create(pretrained: bool = False, **kwargs: Any):
        from timm.models import build_model_with_cfg

        spec, interpolation = spec_and_interpolation(overrides)
        # the composed recipe's interpolation is the truth; a user's own overlay still wins
        kwargs["pretrained_cfg_overlay"] = {"interpolation": interpolation, **(kwargs.get("pretrained_cfg_overlay")
                                                                               or {})}
        return build_model_with_cfg(network_from, name, pretrained, model_cfg=spec,
                                    feature_cfg={"out_indices": (0, 1, 2, 3), "flatten_sequential": True}, **kwargs)
    create.__name__ = create.__qualname__ = name
    create.__module__ = __name__
    create.__doc__ = f"{name}: the model of `python run.py {' '.join(overrides)}` (modernize.build_model)."
    return create


default_cfgs: dict[str, dict[str, Any]] = {}  # read by timm's register_model from this module


def register() -> list[str]:
    """Register every name in timm (idempotent: a name already registered by this module is left alone)."""
    from timm.models import is_model, register_model

    from .roadmap import STEPS

    modern_from = STEPS.index("recipe")  # the roadmap step that brings the modern recipe (conf/delta/recipe.yaml)
    registered = []
    for name, overrides in model_overrides().items():
        if not is_model(name):
            # registered without composing every config at import: steps before `recipe` train with the original
            # recipe (bilinear), the others with the modern one (bicubic); create() overlays the composed value,
            # and tests/test_timm.py checks that the two agree for every name
            step = overrides[0].removeprefix("+step=")
            default_cfgs[name] = pretrained_cfg("bilinear" if STEPS.index(step) < modern_from else "bicubic")
            register_model(_entrypoint(name, overrides))
        registered.append(name)
    return registered
