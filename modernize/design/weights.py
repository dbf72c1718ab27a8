"""Load published ResNet and ConvNeXt checkpoints into `modernize`'s networks.

The builder names every layer by its role (`stem.conv`, `stages.2.blocks.5.branch.spatial`, ...), so a
checkpoint from torchvision, the official ConvNeXt repository or timm only needs its keys renamed; the
tensors are used as they are, except that the ConvNeXt blocks' 1x1 layers, which the official code and timm
write as `nn.Linear` ([out, in]), are 1x1 `nn.Conv2d` here ([out, in, 1, 1]).

Nothing here downloads anything. To start from the published weights, fetch a checkpoint yourself and hand
the file (or its state dict) to `load_pretrained`:

* ResNet-50 (torchvision): ``torchvision.models.resnet50(weights="IMAGENET1K_V1").state_dict()``, or the
  ``resnet50-0676ba61.pth`` file torchvision downloads into ``~/.cache/torch/hub/checkpoints/``
  (IMAGENET1K_V2 is the same architecture). ResNet-101/152 load into a model built with
  ``model.depths=[3,4,23,3]`` / ``[3,8,36,3]``::

      from modernize import build_model
      from modernize.design.weights import load_pretrained
      model = build_model("resnet50")
      load_pretrained(model, "resnet50-0676ba61.pth")

* ConvNeXt (official, https://github.com/facebookresearch/ConvNeXt): e.g. ``convnext_tiny_1k_224_ema.pth``
  from the links in that repository's README. The file stores ``{"model": state_dict}``; the wrapper is
  removed automatically::

      model = build_model("separate_downsampling")  # ConvNeXt-T
      # S/B/L/XL: modernize.build(modernize.design.config.model_spec(modernize.compose(["model=convnext_b"])))
      load_pretrained(model, "convnext_tiny_1k_224_ema.pth")

  ImageNet-22K checkpoints have a 21841-way head: build the model with ``model.num_classes=21841``.
* ConvNeXt (timm): ``timm.create_model("convnext_tiny", pretrained=True).state_dict()`` (or the
  ``model.safetensors`` of a ``timm/convnext_*`` repository loaded with ``safetensors.torch.load_file``).
  torchvision's ``convnext_tiny(weights=...)`` state dict is accepted too.

What is supported is exactly what the builder can express: bottleneck ResNets (not the basic-block
ResNet-18/34) and ConvNeXt V1 with the norm after pooling (not V2's GRN, not timm's `head_norm_first` or
`head_hidden_size` variants). Conversions are strict: any source key without a place in our model raises a
ValueError that names it, rather than being dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "SOURCES",
    "convert",
    "convert_convnext",
    "convert_torchvision_resnet",
    "detect_source",
    "load_pretrained",
    "unwrap_state_dict",
]

SOURCES = ("auto", "torchvision_resnet", "convnext", "modernize")

_CONV = ("weight", "bias")
_LINEAR = ("weight", "bias")
_LAYER_NORM = ("weight", "bias")
_BATCH_NORM = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_SHOW = 5  # how many keys an error message lists


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _first(keys, n: int = _SHOW) -> str:
    keys = list(keys)
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def unwrap_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """The flat {name: tensor} dict inside a checkpoint.

    Removes the top-level "model" / "state_dict" wrappers training scripts store (the official ConvNeXt
    checkpoints are ``{"model": ...}``), and the ``module.`` prefix DistributedDataParallel adds to every key.
    """
    while isinstance(obj, Mapping) and not _is_flat(obj):
        for wrapper in ("model", "state_dict"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
        else:
            raise ValueError(
                "checkpoint is not a state dict: expected {name: tensor}, or one wrapped under a top-level "
                f"'model' or 'state_dict' key; got top-level keys {_first(obj)}"
            )
    if not isinstance(obj, Mapping):
        raise TypeError(f"checkpoint is not a state dict (names -> tensors), got a {type(obj).__name__}")
    state_dict = dict(obj)
    if state_dict and all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    return state_dict


def _is_flat(obj: Mapping) -> bool:
    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _rename(state_dict: Mapping[str, torch.Tensor], rules, layout: str) -> dict[str, torch.Tensor]:
    """Apply the first matching (pattern, target, allowed params, transform) rule to every key; strict."""
    out: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, value in state_dict.items():
        for pattern, target, params, transform in rules:
            m = pattern.fullmatch(key)
            if m is None:
                continue
            *groups, param = m.groups()
            if param not in params:
                continue
            name = target(*groups) if callable(target) else target
            new_key = f"{name}.{params[param] if isinstance(params, Mapping) else param}"
            if new_key in out:
                raise ValueError(f"{layout} checkpoint: keys map twice onto {new_key!r} (last from {key!r})")
            out[new_key] = transform(value) if transform else value
            break
        else:
            unmapped.append(key)
    if unmapped:
        raise ValueError(
            f"{layout} checkpoint has {len(unmapped)} key(s) with no place in modernize's model: "
            f"{_first(unmapped)}. Only what the builder can express converts (see modernize.design.weights' "
            "docstring)."
        )
    return out


def _rule(pattern: str, target: str | Callable[..., str], params, transform=None):
    # Every pattern is followed by the parameter name, captured as the last group; `params` lists the names
    # allowed there, or maps each onto the name it takes in our model.
    return re.compile(pattern + r"\.([A-Za-z_]+)"), target, params, transform


def _as_1x1_conv(v: torch.Tensor) -> torch.Tensor:
    """nn.Linear weight [out, in] -> 1x1 nn.Conv2d weight [out, in, 1, 1]; biases and 4-D weights pass."""
    return v.reshape(*v.shape, 1, 1) if v.ndim == 2 else v


def _as_vector(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1)


# --------------------------------------------------------------------------------------------------
# torchvision ResNet
# --------------------------------------------------------------------------------------------------

_RESNET_BRANCH = {"conv1": "pw1", "bn1": "pw1_norm", "conv2": "spatial", "bn2": "spatial_norm",
                  "conv3": "pw2", "bn3": "pw2_norm"}


def _block(stage: str, block: str, offset: int = 1) -> str:
    return f"stages.{int(stage) - offset}.blocks.{int(block)}"


def _resnet_branch(stage: str, block: str, layer: str) -> str:
    return f"{_block(stage, block)}.branch.{_RESNET_BRANCH[layer]}"


_RESNET_RULES = [
    _rule(r"conv1", "stem.conv", _CONV),
    _rule(r"bn1", "stem.norm", _BATCH_NORM),
    _rule(r"layer([1-9]\d*)\.(\d+)\.(conv[123])", _resnet_branch, _CONV),
    _rule(r"layer([1-9]\d*)\.(\d+)\.(bn[123])", _resnet_branch, _BATCH_NORM),
    _rule(r"layer([1-9]\d*)\.(\d+)\.downsample\.0", lambda s, b: f"{_block(s, b)}.shortcut.conv", _CONV),
    _rule(r"layer([1-9]\d*)\.(\d+)\.downsample\.1", lambda s, b: f"{_block(s, b)}.shortcut.norm",
          _BATCH_NORM),
    _rule(r"fc", "head.fc", _LINEAR),
]


def convert_torchvision_resnet(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision bottleneck ResNet keys (ResNet-50/101/152, any depth) -> modernize's.

    `layer{s}.{j}.conv1/bn1/conv2/bn2/conv3/bn3` become `stages.{s-1}.blocks.{j}.branch.pw1/pw1_norm/spatial/
    spatial_norm/pw2/pw2_norm`, `downsample.0/1` the block's `shortcut.conv/norm`, `conv1/bn1` the stem and
    `fc` the head. BatchNorm buffers (running stats, num_batches_tracked) come along.
    """
    state_dict = unwrap_state_dict(state_dict)
    if any(k.startswith("layer1.0.conv1.") for k in state_dict) and \
            not any(k.startswith("layer1.0.conv3.") for k in state_dict):
        raise ValueError(
            "torchvision ResNet checkpoint has basic blocks (two 3x3 convs, ResNet-18/34); modernize builds "
            "bottleneck blocks (1x1 -> 3x3 -> 1x1) only, so ResNet-50/101/152 (and wide_resnet) checkpoints "
            "load"
        )
    return _rename(state_dict, _RESNET_RULES, "torchvision ResNet")


# --------------------------------------------------------------------------------------------------
# ConvNeXt: official (facebookresearch/ConvNeXt), timm and torchvision layouts
# --------------------------------------------------------------------------------------------------

_CONVNEXT_BLOCK = {"dwconv": "spatial", "conv_dw": "spatial", "norm": "spatial_norm",
                   "pwconv1": "pw1", "mlp.fc1": "pw1", "pwconv2": "pw2", "mlp.fc2": "pw2"}
_GAMMA = ("gamma",)


def _convnext_block(stage: str, block: str, layer: str) -> str:
    return f"{_block(stage, block, offset=0)}.branch.{_CONVNEXT_BLOCK[layer]}"


_CONVNEXT_RULES = {
    # github.com/facebookresearch/ConvNeXt models/convnext.py: downsample_layers[0] is the stem (conv, LN),
    # downsample_layers[i] the LN + 2x2/2 conv in front of stage i, stages[i][j] the blocks, `norm` the LN
    # after pooling and `head` the classifier.
    "official": [
        _rule(r"downsample_layers\.0\.0", "stem.conv", _CONV),
        _rule(r"downsample_layers\.0\.1", "stem.norm", _LAYER_NORM),
        _rule(r"downsample_layers\.([1-9]\d*)\.0", lambda i: f"stages.{i}.downsample.norm", _LAYER_NORM),
        _rule(r"downsample_layers\.([1-9]\d*)\.1", lambda i: f"stages.{i}.downsample.conv", _CONV),
        _rule(r"stages\.(\d+)\.(\d+)\.(dwconv|norm)", _convnext_block, _CONV),
        _rule(r"stages\.(\d+)\.(\d+)\.(pwconv[12])", _convnext_block, _LINEAR, _as_1x1_conv),
        _rule(r"stages\.(\d+)\.(\d+)", lambda i, j: f"{_block(i, j, offset=0)}.layer_scale", _GAMMA),
        _rule(r"norm", "head.norm", _LAYER_NORM),
        _rule(r"head", "head.fc", _LINEAR),
    ],
    # timm models/convnext.py (ConvNeXt with the default head_norm_first=False)
    "timm": [
        _rule(r"stem\.0", "stem.conv", _CONV),
        _rule(r"stem\.1", "stem.norm", _LAYER_NORM),
        _rule(r"stages\.([1-9]\d*)\.downsample\.0", lambda i: f"stages.{i}.downsample.norm", _LAYER_NORM),
        _rule(r"stages\.([1-9]\d*)\.downsample\.1", lambda i: f"stages.{i}.downsample.conv", _CONV),
        _rule(r"stages\.(\d+)\.blocks\.(\d+)\.(conv_dw|norm)", _convnext_block, _CONV),
        _rule(r"stages\.(\d+)\.blocks\.(\d+)\.(mlp\.fc[12])", _convnext_block, _LINEAR, _as_1x1_conv),
        _rule(r"stages\.(\d+)\.blocks\.(\d+)", lambda i, j: f"{_block(i, j, offset=0)}.layer_scale", _GAMMA),
        _rule(r"head\.norm", "head.norm", _LAYER_NORM),
        _rule(r"head\.fc", "head.fc", _LINEAR),
    ],
    # torchvision models/convnext.py: features[0] stem, features[2i+1] stage i's CNBlocks (block.0 dwconv,
    # block.2 LN, block.3/5 Linear, layer_scale [C,1,1]), features[2i] the LN + conv in front of stage i,
    # classifier[0] the LN after pooling and classifier[2] the classifier.
    "torchvision": [
        _rule(r"features\.0\.0", "stem.conv", _CONV),
        _rule(r"features\.0\.1", "stem.norm", _LAYER_NORM),
        _rule(r"features\.(\d*[02468])\.([01])",
              lambda f, k: f"stages.{int(f) // 2}.downsample.{('norm', 'conv')[int(k)]}", _CONV),
        _rule(r"features\.(\d*[13579])\.(\d+)\.block\.([0235])",
              lambda f, j, layer: f"{_block(str(int(f) // 2), j, offset=0)}.branch."
                                  f"{ {'0': 'spatial', '2': 'spatial_norm', '3': 'pw1', '5': 'pw2'}[layer] }",
              _CONV, _as_1x1_conv),
        _rule(r"features\.(\d*[13579])\.(\d+)",
              lambda f, j: f"{_block(str(int(f) // 2), j, offset=0)}.layer_scale", {"layer_scale": "gamma"},
              _as_vector),
        _rule(r"classifier\.0", "head.norm", _LAYER_NORM),
        _rule(r"classifier\.2", "head.fc", _LINEAR),
    ],
}


def convnext_layout(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """"official", "timm" or "torchvision" for a ConvNeXt state dict, None if it is none of them."""
    if any(k.startswith("downsample_layers.") for k in state_dict):
        return "official"
    if any(k.startswith("stem.0.") for k in state_dict) or any(".conv_dw." in k for k in state_dict):
        return "timm"
    if any(k.startswith("features.0.0.") for k in state_dict) and any(".block.0." in k for k in state_dict):
        return "torchvision"
    return None


def convert_convnext(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ConvNeXt checkpoint in the official, timm or torchvision layout -> modernize's keys.

    The layout is detected from the keys; a top-level "model" / "state_dict" wrapper is removed first. The
    blocks' pointwise `nn.Linear` weights become 1x1 conv weights.
    """
    state_dict = unwrap_state_dict(state_dict)
    layout = convnext_layout(state_dict)
    if layout is None:
        raise ValueError(
            "not a ConvNeXt checkpoint in a known layout: expected the official one "
            "('downsample_layers.0.0.weight', 'stages.0.0.dwconv.weight', ...), timm's ('stem.0.weight', "
            "'stages.0.blocks.0.conv_dw.weight', ...) or "
            f"torchvision's ('features.0.0.weight', ...); got keys {_first(state_dict)}"
        )
    return _rename(state_dict, _CONVNEXT_RULES[layout], f"ConvNeXt ({layout} layout)")


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def detect_source(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Which converter a (unwrapped) state dict needs: "torchvision_resnet", "convnext" or "modernize"."""
    keys = list(state_dict)
    if any(k.startswith("stem.conv.") for k in keys):
        return "modernize"
    if any(k.startswith("layer1.") for k in keys) and any(k.startswith("conv1.") for k in keys):
        return "torchvision_resnet"
    if convnext_layout(state_dict) is not None:
        return "convnext"
    raise ValueError(
        "cannot tell which model this checkpoint is from; pass source= one of "
        f"{', '.join(SOURCES[1:])}. First keys: {_first(keys)}"
    )


_CONVERTERS: dict[str, Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]] = {
    "torchvision_resnet": convert_torchvision_resnet,
    "convnext": convert_convnext,
    "modernize": dict,
}


def convert(state_dict: Mapping[str, Any], source: str = "auto") -> tuple[dict[str, torch.Tensor], str]:
    """A checkpoint's state dict under modernize's names, and what it was converted from ("source='convnext'
    (detected)"). The tensors are the checkpoint's own, renamed, or views of them where a shape changes (a Linear's
    [out, in] as a 1x1 conv's [out, in, 1, 1]): modernize.design.export follows them back to the source's names."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {source!r}")
    state_dict = unwrap_state_dict(state_dict)
    detected = detect_source(state_dict) if source == "auto" else source
    label = f"source={detected!r}" + (" (detected)" if source == "auto" else "")
    try:
        return _CONVERTERS[detected](state_dict), label
    except ValueError as e:
        raise ValueError(f"cannot convert checkpoint, {label}: {e}") from None


def load_pretrained(model: nn.Module, state_dict_or_path: Mapping[str, Any] | str | PathLike, *,
                    source: str = "auto", strict: bool = True):
    """Load a torchvision ResNet, a ConvNeXt (official / timm / torchvision) or a modernize checkpoint.

    `state_dict_or_path` is a state dict or a file path (read with ``torch.load(weights_only=True)`` on the
    CPU). `source="auto"` detects the layout from the keys. With `strict=True`, keys the model lacks or the
    checkpoint lacks raise a ValueError that lists them; shape mismatches always do (e.g. a 21841-class head
    into a 1000-class model). Converting is strict either way: a checkpoint key with no place in our model
    raises. Returns `model.load_state_dict`'s (missing_keys, unexpected_keys).
    """
    where = ""
    if isinstance(state_dict_or_path, (str, PathLike)):
        where = f" from {str(state_dict_or_path)!r}"
        state_dict_or_path = torch.load(state_dict_or_path, map_location="cpu", weights_only=True)
    from .model import Network

    if isinstance(model, Network):
        converted, label = convert(state_dict_or_path, source)
    else:  # timm's own model (a transformer of the paper's tables): a file of that class holds its own layout
        converted, label = dict(state_dict_or_path), f"{type(model).__name__}'s own layout"
    label += where

    own = model.state_dict()
    missing = [k for k in own if k not in converted]
    unexpected = [k for k in converted if k not in own]
    shapes = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
              for k, v in converted.items() if k in own and v.shape != own[k].shape]
    if shapes or (strict and (missing or unexpected)):
        lines = [f"checkpoint does not fit the model, {label}:"]
        if missing:
            lines.append(f"  {len(missing)} missing key(s) (in the model, not the checkpoint): "
                         f"{_first(missing)}")
        if unexpected:
            lines.append(f"  {len(unexpected)} unexpected key(s) (in the checkpoint, not the model): "
                         f"{_first(unexpected)}")
        if shapes:
            lines.append(f"  {len(shapes)} shape mismatch(es): {'; '.join(shapes[:_SHOW])}")
        lines.append("  (do the model's design, depths, widths and num_classes match the checkpoint's?)")
        raise ValueError("\n".join(lines))
    return model.load_state_dict(converted, strict=strict)


class WeightsError(ValueError):
    """A weights file that cannot be read (missing, cut, not a checkpoint): one line naming the caller's setting."""


# A run folder's weights: the final weights alone (logger.wandb.log_weights), else the resumable checkpoint
RUN_WEIGHT_FILES = ("weights.pt", "last.pt")


def read_weights(path: Path, use_ema: str | bool, setting: str = "eval.weights", ema_setting: str = "eval.ema=true"
                 ) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict in `path` and what it is ("model" or "ema"); WeightsError (one line) for a missing, unreadable
    or truncated file. Our last.pt / weights.pt hold the model and, with an EMA, its average under "ema"; a
    .safetensors file is read with safetensors (python -m modernize.export writes one per step). The messages name
    the caller's settings (`setting`, `ema_setting`: task=eval's by default)."""
    if not path.is_file():
        raise WeightsError(f"{setting}={path} does not exist or is not a file")
    safetensors = path.suffix == ".safetensors"  # python -m modernize.export's, or a timm repository's model file
    try:
        if safetensors:
            from safetensors.torch import load_file

            obj = load_file(path, device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a truncated zip, a pickle torch refuses, not a checkpoint at all
        reason = " ".join(str(e).split())[:160]
        kind = "safetensors file" if safetensors else "PyTorch checkpoint"
        raise WeightsError(f"{setting}={path} is not a readable {kind} ({type(e).__name__}: {reason}); "
                           f"is the file complete?") from None
    ema = obj.get("ema") if isinstance(obj, dict) else None
    if use_ema is True and ema is None:
        raise WeightsError(f"{ema_setting} but {path} holds no EMA weights (no 'ema' entry)")
    if ema is not None and use_ema in ("auto", True):
        # torch's AveragedModel: the model's names under "module.", and its update count
        return {k.removeprefix("module."): v for k, v in ema.items() if k != "n_averaged"}, "ema"
    try:
        return unwrap_state_dict(obj), "model"
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{setting}={path}: {e}") from None
