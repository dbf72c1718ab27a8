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

import math
from dataclasses import replace
from typing import Any

from .preprocessing import IMAGENET_MEAN_STD, Preprocessing, preprocessing_of
from .spec import ModelSpec

PREFIX = "modernize_"
PAPER_RESOLUTION = 224
NETWORK_STRIDE = 32  # the paper's stem (4) and three halvings: 7x7 maps at 224 px


def model_overrides() -> dict[str, list[str]]:
    """{timm name: the Hydra overrides of its model}: every roadmap step, and the kernel sweep's sizes."""
    from .roadmap import STEPS, paper

    names = {f"{PREFIX}{step}": [f"+step={step}"] for step in STEPS}
    for row in paper()["kernel_size_sweep"]:
        k = row["kernel"]
        names[f"{PREFIX}kernel_size_k{k}"] = ["+step=kernel_size", f"model.block.kernel_size={k}"]
    return names


def pretrained_cfg(preprocessing: Preprocessing, spec: ModelSpec | None = None) -> dict[str, Any]:
    """timm's pretrained_cfg of a model of `spec` (None: a paper's model, 1000 classes, stride 32) that expects
    `preprocessing` (modernize.design.preprocessing): what timm.data.resolve_data_config reads, and the names of the
    first conv and the classifier."""
    stride = spec.reduction(len(spec.depths) - 1) if spec is not None else NETWORK_STRIDE
    pool = math.ceil(preprocessing.resolution / stride)
    num_classes = spec.num_classes if spec is not None else 1000
    return {"url": "", "num_classes": num_classes, **preprocessing.timm_cfg(), "pool_size": (pool, pool),
            "first_conv": "stem.conv", "classifier": "head.fc", "license": "mit"}


def paper_preprocessing(interpolation: str) -> Preprocessing:
    """The paper's models' eval transform on ImageNet: 224 px, crop 0.875, the recipe's interpolation."""
    return preprocessing_of(PAPER_RESOLUTION, IMAGENET_MEAN_STD, folder=True, interpolation=interpolation)


def spec_and_interpolation(overrides: list[str]):
    """The composed model's spec (the paper's) and its recipe's interpolation."""
    from .config import compose, model_spec

    cfg = compose(overrides)
    return model_spec(cfg), str(cfg.recipe.interpolation)


def network_from(cfg, **fields: Any):
    """The Network of a spec (`cfg`, as timm's build_model_with_cfg names it) with timm's keyword arguments
    (num_classes, drop_path_rate, in_chans) and any other field of ModelSpec (width_multiplier, ...) applied; refuses
    the ones it cannot honour."""
    import dataclasses

    from .model import Network

    allowed = {f.name for f in dataclasses.fields(cfg)} - {"block", "stem"}
    unknown = sorted(k for k, v in fields.items() if v is not None and k not in allowed)
    if unknown:
        raise TypeError(f"modernize models take the fields of modernize.ModelSpec ({', '.join(sorted(allowed))}); "
                        f"got {unknown}")
    spec = replace(cfg, **{k: v for k, v in fields.items() if v is not None})
    spec.validate()
    return Network(spec)


def trained_spec(name: str, step: str, kernel: int | None, overlay: dict[str, Any]):
    """(spec, pretrained_cfg) of the exported file an overlay names (pretrained_cfg_overlay=dict(file=...)), from its
    model card: the run's model as it trained it and its preprocessing; (None, None) for a file without a card."""
    from pathlib import Path

    from .export import card_of, preprocessing_of_card, spec_of_card

    file = overlay.get("file")
    card = card_of(Path(file)) if file and Path(file).is_file() else None
    if card is None:
        return None, None
    spec = spec_of_card(card)
    if card.get("step") != step or (kernel is not None and spec.block.kernel_size != kernel):
        what = f"{card.get('step')}{'' if kernel is None else f' k={spec.block.kernel_size}'}"
        raise ValueError(f"{file} is a run of {what}, not {name}: create the model of its own step")
    return spec, pretrained_cfg(preprocessing_of_card(card), spec)


def _entrypoint(name: str, overrides: list[str]):
    step = overrides[0].removeprefix("+step=")
    kernel = int(overrides[1].rsplit("=", 1)[1]) if len(overrides) > 1 else None

    def create(pretrained: bool = False, **kwargs: Any):
        from timm.models import build_model_with_cfg

        overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
        spec, trained_cfg = trained_spec(name, step, kernel, overlay) if pretrained else (None, None)
        if spec is not None:  # an exported run's file: its model and preprocessing; the user's overlay still wins
            overlay = {**trained_cfg, **overlay}
        else:  # the composed recipe's interpolation is the truth; a user's own overlay still wins
            spec, interpolation = spec_and_interpolation(overrides)
            overlay = {"interpolation": interpolation, **overlay}
        return build_model_with_cfg(network_from, name, pretrained, model_cfg=spec, pretrained_cfg_overlay=overlay,
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
            default_cfgs[name] = pretrained_cfg(paper_preprocessing("bilinear" if STEPS.index(step) < modern_from
                                                                    else "bicubic"))
            register_model(_entrypoint(name, overrides))
        registered.append(name)
    return registered
