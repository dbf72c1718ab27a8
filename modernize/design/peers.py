"""The transformers the paper sets ConvNeXt beside (Table 1: Swin-T/S/B and DeiT-S/B; Table 2: ViT-S/B/L against the
isotropic ConvNeXts), as models of this project: `model=swin_t`. timm builds each, as its own class (never
re-implemented here); a `PeerSpec` holds the few numbers that say which model at which size, so that a profile can
scale it (modernize.training.proxy.scale_peer) and the run records it as it records a ConvNeXt's spec.

The roadmap's deltas act on the parametric ConvNet builder and mean nothing to a transformer: a delta or a step on a
peer is refused before anything runs (modernize.training.checks).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FAMILIES = ("swin", "vit")  # timm's SwinTransformer, timm's VisionTransformer (DeiT is a ViT with DeiT's recipe)
PEER_KEY = "timm"  # a model config with this key is a peer: the timm model it is
# timm 1.0 is the first release whose Swin takes img_size / window_size as keyword arguments and pads to whole windows
TIMM_NEEDED = "1.0"


@dataclass(frozen=True)
class PeerSpec:
    """A transformer of the paper's tables at some size: timm's model `timm`, with its embedding width, depth and
    heads per stage (one stage for a ViT), patch and (Swin) window size, at `img_size` px."""

    name: str  # this project's name: swin_t
    timm: str  # timm's: swin_tiny_patch4_window7_224
    family: str
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    patch_size: int
    window_size: int | None = None  # Swin only
    img_size: int = 224
    drop_path_rate: float = 0.0
    num_classes: int = 1000
    in_chans: int = 3
    width_multiplier: float = 1.0  # what the profile's width rule was given (modernize.training.proxy.scale_peer)

    def validate(self) -> None:
        """Every field, and whether the patches and windows tile the image at `img_size` (ValueError naming them)."""
        if self.family not in FAMILIES:
            raise ValueError(f"model.family must be one of {', '.join(FAMILIES)}; got {self.family!r}")
        if len(self.depths) != len(self.num_heads) or (self.family == "vit" and len(self.depths) != 1):
            raise ValueError(f"{self.name}: depths {list(self.depths)} and num_heads {list(self.num_heads)} must "
                             f"give one head count per stage (a ViT has one stage)")
        for i, heads in enumerate(self.num_heads):
            if self.stage_dims()[i] % heads:
                raise ValueError(f"{self.name}: stage {i + 1}'s width {self.stage_dims()[i]} is not divisible by its "
                                 f"{heads} heads; choose a width multiplier that keeps a whole head dimension")
        if not 0 <= self.drop_path_rate < 1:
            raise ValueError(f"model.drop_path_rate must be in [0, 1), got {self.drop_path_rate!r}")
        if self.img_size % self.patch_size:
            raise ValueError(f"{self.name}: {self.patch_size}x{self.patch_size} patches do not tile a {self.img_size} "
                             f"px image; use a resolution that is a multiple of {self.patch_size}")
        grid = self.img_size // self.patch_size
        if self.family == "swin":
            for stage, tokens in enumerate(self.stage_grids()):
                if tokens < 1 or (stage and self.stage_grids()[stage - 1] % 2):
                    raise ValueError(f"{self.name}: {grid}x{grid} tokens cannot be merged {len(self.depths) - 1} times "
                                     f"(2x2 each); use a resolution that is a multiple of "
                                     f"{self.patch_size * 2 ** (len(self.depths) - 1)}")
                window = self.window_size or 0
                if tokens > window and tokens % window:
                    raise ValueError(f"{self.name}: {window}x{window} windows do not tile stage {stage + 1}'s "
                                     f"{tokens}x{tokens} tokens at {self.img_size} px (patch {self.patch_size}); "
                                     f"a window must divide each stage's grid or cover it")

    def stage_dims(self) -> tuple[int, ...]:
        """Each stage's width: Swin doubles it at each patch merging, a ViT has one."""
        return tuple(self.embed_dim * 2 ** i for i in range(len(self.depths)))

    def stage_grids(self) -> tuple[int, ...]:
        """Each stage's token grid side (Swin halves it at each patch merging)."""
        grid = self.img_size // self.patch_size
        return tuple(grid // 2 ** i for i in range(len(self.depths)))

    @property
    def classifier_weight(self) -> str:
        """The state dict key of the classifier's weight in timm's class (its rows: the classes)."""
        return "head.fc.weight" if self.family == "swin" else "head.weight"

    uses_batch_norm = False  # LayerNorm throughout (as ModelSpec.uses_batch_norm says of a ConvNet)

    def timm_kwargs(self) -> dict[str, Any]:
        """What timm.create_model takes to build this size of its model (embed_dim is already the scaled one)."""
        common = {"img_size": self.img_size, "patch_size": self.patch_size, "embed_dim": self.embed_dim,
                  "drop_path_rate": self.drop_path_rate, "num_classes": self.num_classes, "in_chans": self.in_chans}
        if self.family == "swin":
            return common | {"depths": self.depths, "num_heads": self.num_heads, "window_size": self.window_size}
        return common | {"depth": self.depths[0], "num_heads": self.num_heads[0]}


def is_peer_config(model: Mapping[str, Any]) -> bool:
    return PEER_KEY in model


def peer_spec_from_dict(data: Mapping[str, Any]) -> PeerSpec:
    """A validated PeerSpec from the resolved `model` node of a peer's config (conf/model/swin_t.yaml)."""
    fields = {f.name for f in dataclasses.fields(PeerSpec)}
    unknown = sorted(set(data) - fields - {"target", "reference"})
    if unknown:
        raise ValueError(f"model.{unknown[0]} is not a setting of a peer ({data.get('name')}); its settings are "
                         f"{', '.join(sorted(fields))}")
    values = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in data.items() if k in fields}
    spec = PeerSpec(**values)
    spec.validate()
    return spec


def check_timm(name: str) -> None:
    """ValueError in one line where the installed timm cannot build `name` (too old, or without the model)."""
    import timm

    if not timm.is_model(name):
        raise ValueError(f"timm {timm.__version__} has no model {name!r}; this project needs timm >= {TIMM_NEEDED}")


def build_peer(spec: PeerSpec):
    """timm's own model of the spec, freshly initialized (timm's init: truncated normal, as DeiT's and Swin's)."""
    import timm

    check_timm(spec.timm)
    return timm.create_model(spec.timm, pretrained=False, **spec.timm_kwargs())
