"""The design space: a network is a `ModelSpec`, a block is a `BlockSpec`.

Every roadmap step of the paper (Liu et al., "A ConvNet for the 2020s", CVPR 2022) is a change of a few
fields here, written as a YAML delta under `conf/delta/`. Nothing in the builder knows step names.

The defaults below are ResNet-50's (torchvision's) and the only place they are written: every model config starts
from them (`model_config_defaults`, stored for Hydra as `model_spec_defaults`; conf/model/resnet50.yaml adds its
name and target). A new design axis is therefore one field here, with ResNet-50's value as its default, plus its
use in `modernize.design.model.Block`; a delta then sets it.

The specs are validated in full before any module is built, so a bad config fails with one message that
names the field and the allowed values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

NORMS = ("batch", "layer")
ACTIVATIONS = ("relu", "gelu", "silu")
BLOCK_LAYERS = ("pw1", "spatial", "pw2")  # the three convs of a bottleneck, by role not by position
SPATIAL_POSITIONS = ("middle", "top")
STEMS = ("resnet", "patchify")
STEM_STRIDE_DIVISORS = (1, 2, 4)
DOWNSAMPLING = ("in_block", "separate")
# kaiming: torchvision's ResNet (He-normal fan-out convs, PyTorch's default classifier); trunc_normal: DeiT / Swin /
# ConvNeXt (std 0.02, zero bias); kaiming_zero_last: timm's ResNet (kaiming, and each block's last norm scale zeroed
# so that every residual branch starts as the identity, Goyal et al. 2017 section 5.1; timm's `zero_init_last`)
INITS = ("kaiming", "trunc_normal", "kaiming_zero_last")
# Field metadata key: False for a field that model configs do not carry (only the profile sets it, through
# modernize.training.proxy.scale_model), so it is not among the defaults every model config starts from.
MODEL_CONFIG = "in_model_config"


# The largest depthwise kernel that can still see every pixel of the paper's 56x56 stage-1 map from any position.
MAX_KERNEL_SIZE = 2 * 56 - 1


@dataclass(frozen=True)
class BlockSpec:
    """One residual bottleneck block.

    `pw1` and `pw2` are the two 1x1 convs, `spatial` is the k x k conv. Where the spatial conv sits and which
    of the three layers carry a norm or an activation are data, so the ResNet bottleneck and the ConvNeXt
    block are two values of this spec.
    """

    kernel_size: int = 3
    groups: int | str = 1  # an int, or "depthwise": groups = channels (paper section 2.4)
    expansion: int = 4
    # False: ResNet bottleneck, residual width = width * expansion, hidden = width (wide -> narrow -> wide).
    # True: inverted bottleneck, residual width = width, hidden = width * expansion (narrow -> wide -> narrow).
    inverted: bool = False
    spatial_position: str = "middle"  # "middle": pw1 -> spatial -> pw2; "top": spatial -> pw1 -> pw2
    activation: str = "relu"
    act_after: tuple[str, ...] = ("pw1", "spatial")
    act_after_residual: bool = True  # ResNet applies ReLU after the residual sum
    norm: str = "batch"
    norm_after: tuple[str, ...] = ("pw1", "spatial", "pw2")
    layer_scale_init: float = 0.0  # 0 disables layer scale (Touvron et al. 2021); ConvNeXt uses 1e-6

    def validate(self) -> None:
        _check_int("block.kernel_size", self.kernel_size, minimum=1)
        if self.kernel_size % 2 == 0:
            raise ValueError(
                f"block.kernel_size must be an odd positive integer (so 'same' padding keeps the size), "
                f"got {self.kernel_size}; allowed: 1, 3, 5, 7, 9, 11, ..."
            )
        if self.kernel_size > MAX_KERNEL_SIZE:
            raise ValueError(
                f"block.kernel_size must be at most {MAX_KERNEL_SIZE} (stage 1 of the paper's 224 px model is "
                f"56x56: a larger kernel only adds padding taps), got {self.kernel_size}; the paper sweeps 3-11"
            )
        if self.groups != "depthwise":
            _check_int("block.groups", self.groups, minimum=1, allowed_hint="a positive integer or 'depthwise'")
        _check_int("block.expansion", self.expansion, minimum=1)
        _check_choice("block.spatial_position", self.spatial_position, SPATIAL_POSITIONS)
        _check_choice("block.activation", self.activation, ACTIVATIONS)
        _check_choice("block.norm", self.norm, NORMS)
        for name, layers in (("block.act_after", self.act_after), ("block.norm_after", self.norm_after)):
            for layer in layers:
                _check_choice(name, layer, BLOCK_LAYERS)
        if not isinstance(self.layer_scale_init, (int, float)) or self.layer_scale_init < 0:
            raise ValueError(
                f"block.layer_scale_init must be a number >= 0 (0 disables it), got {self.layer_scale_init!r}")

    def residual_width(self, width: int) -> int:
        return width if self.inverted else width * self.expansion

    def hidden_width(self, width: int) -> int:
        return width * self.expansion if self.inverted else width

    def spatial_groups(self, channels: int) -> int:
        return channels if self.groups == "depthwise" else int(self.groups)


@dataclass(frozen=True)
class StemSpec:
    kind: str = "resnet"  # "resnet": 7x7/2 conv + norm + act + 3x3/2 max-pool; "patchify": p x p / p conv
    patch_size: int = 4
    norm: bool = True
    # A profile's reduction of the stem's total stride (4 in the paper) for small images, the same for both
    # stems: 2 drops the ResNet stem's max-pool and halves the patch; 4 also makes the 7x7 conv stride 1. At 32 px
    # the paper's stride 4 leaves the last stage at 1x1; the paper's model always has 1 (see docs/proxy.md).
    stride_divisor: int = field(default=1, metadata={MODEL_CONFIG: False})

    def validate(self) -> None:
        _check_choice("stem.kind", self.kind, STEMS)
        _check_int("stem.patch_size", self.patch_size, minimum=1)
        if self.stride_divisor not in STEM_STRIDE_DIVISORS:
            raise ValueError(f"stem.stride_divisor must be one of {', '.join(map(str, STEM_STRIDE_DIVISORS))}; "
                             f"got {self.stride_divisor!r}")
        if self.kind == "patchify" and self.patch_size % self.stride_divisor:
            raise ValueError(f"stem.stride_divisor={self.stride_divisor} does not divide stem.patch_size="
                             f"{self.patch_size}; allowed: a divisor of the patch size")

    @property
    def stride(self) -> int:
        """The stem's total stride: 4 for both of the paper's stems."""
        return (self.patch_size if self.kind == "patchify" else 4) // self.stride_divisor


@dataclass(frozen=True)
class ModelSpec:
    widths: tuple[int, ...] = (64, 128, 256, 512)  # per stage: the bottleneck's `width` (see BlockSpec)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    block: BlockSpec = field(default_factory=BlockSpec)
    stem: StemSpec = field(default_factory=StemSpec)
    # "in_block": the first block of stages 2..4 strides its spatial conv and projects its shortcut (ResNet);
    # "separate": a norm + 2x2/2 conv between stages, every block keeps its resolution (paper section 2.6).
    downsampling: str = "in_block"
    head_norm: bool = False  # a norm after global average pooling (section 2.6)
    drop_path_rate: float = 0.0
    num_classes: int = 1000
    in_chans: int = 3
    width_multiplier: float = 1.0  # profiles shrink every width by this factor; 1.0 is the paper's model
    init: str = "kaiming"

    def validate(self) -> None:
        if len(self.widths) == 0 or len(self.widths) != len(self.depths):
            raise ValueError(
                f"model.widths and model.depths must be non-empty and of equal length (one entry per stage), "
                f"got widths={list(self.widths)} depths={list(self.depths)}"
            )
        for i, w in enumerate(self.widths):
            _check_int(f"model.widths[{i}]", w, minimum=1)
        for i, d in enumerate(self.depths):
            _check_int(f"model.depths[{i}]", d, minimum=1)
        _check_choice("model.downsampling", self.downsampling, DOWNSAMPLING)
        _check_choice("model.init", self.init, INITS)
        _check_int("model.num_classes", self.num_classes, minimum=1)
        _check_int("model.in_chans", self.in_chans, minimum=1)
        if not isinstance(self.width_multiplier, (int, float)) or self.width_multiplier <= 0:
            raise ValueError(f"model.width_multiplier must be a number > 0, got {self.width_multiplier!r}")
        if not isinstance(self.drop_path_rate, (int, float)) or not 0 <= self.drop_path_rate < 1:
            raise ValueError(f"model.drop_path_rate must be in [0, 1), got {self.drop_path_rate!r}")
        self.block.validate()
        self.stem.validate()
        if self.block.groups != "depthwise":
            for width in self.scaled_widths():
                for channels in self._spatial_conv_channels(width):
                    if channels % int(self.block.groups):
                        raise ValueError(
                            f"block.groups={self.block.groups} does not divide the {channels} channels of a "
                            f"spatial conv; allowed: a divisor of every stage's channels, or 'depthwise'"
                        )

    def _spatial_conv_channels(self, width: int) -> tuple[int, ...]:
        b = self.block
        if b.spatial_position == "middle":
            return (b.hidden_width(width),)
        # at the top the spatial conv sees the block's input, which is the previous stage's width in a
        # stage's first block when downsampling happens inside the block
        return tuple({b.residual_width(w) for w in self.scaled_widths()} | {self.stem_width()})

    @property
    def classifier_weight(self) -> str:
        """The state dict key of the classifier's weight (its rows: the classes)."""
        return "head.fc.weight"

    @property
    def uses_batch_norm(self) -> bool:
        """Whether the blocks normalize over the batch (then the device batch is BatchNorm's batch)."""
        return self.block.norm == "batch"

    def scaled_widths(self) -> tuple[int, ...]:
        """Stage widths after the profile's width multiplier, rounded to a multiple of 8 (at least 8)."""
        if self.width_multiplier == 1.0:
            return tuple(self.widths)
        return tuple(max(8, int(round(w * self.width_multiplier / 8)) * 8) for w in self.widths)

    def reduction(self, stage: int) -> int:
        """The total stride at the output of `stage` (0-based): the stem's, halved by each later stage."""
        return self.stem.stride * 2 ** stage

    def stem_width(self) -> int:
        # The stem feeds stage 1 at the stage's own width: 64 for ResNet-50, 96 after "resnextify", which is
        # also ConvNeXt-T's stem. See docs/roadmap.md for why this matches the paper's 5.3 GFLOPs.
        return self.scaled_widths()[0]


def _check_int(name: str, value: Any, *, minimum: int, allowed_hint: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        hint = allowed_hint or (f"an integer >= {minimum}" if minimum > 1 else "a positive integer")
        raise ValueError(f"{name} must be {hint}, got {value!r}")


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _from_mapping(cls, data: Mapping[str, Any], where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(where + k for k in unknown)}; allowed: {', '.join(sorted(names))}")
    kwargs = {}
    for key, value in data.items():
        if isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def model_config_defaults() -> dict[str, Any]:
    """ModelSpec's defaults (ResNet-50) as the plain dict every Hydra model config starts from."""

    def as_config(cls) -> dict[str, Any]:
        config = {}
        for f in dataclasses.fields(cls):
            if not f.metadata.get(MODEL_CONFIG, True):
                continue
            value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            config[f.name] = as_config(type(value)) if dataclasses.is_dataclass(value) else \
                list(value) if isinstance(value, tuple) else value
        return config

    return as_config(ModelSpec)


# Keys of the Hydra `model` node that describe the run, not the architecture.
_NON_ARCHITECTURE_KEYS = ("name", "target", "reference")


def spec_as_dict(spec: ModelSpec) -> dict[str, Any]:
    """The spec as JSON gives it back (tuples as lists): what model_spec_from_dict reads, and a stable cache key."""
    import json

    return json.loads(json.dumps(dataclasses.asdict(spec)))


def model_spec_from_dict(data: Mapping[str, Any]) -> ModelSpec:
    """Build and validate a ModelSpec from a plain dict (the resolved Hydra `model` node)."""
    data = {k: v for k, v in data.items() if k not in _NON_ARCHITECTURE_KEYS}
    block = _from_mapping(BlockSpec, data.pop("block", {}) or {}, "block.")
    stem = _from_mapping(StemSpec, data.pop("stem", {}) or {}, "stem.")
    spec = _from_mapping(ModelSpec, {**data, "block": block, "stem": stem}, "model.")
    spec.validate()
    return spec
