"""modernize: the ConvNeXt roadmap (ResNet-50 -> ConvNeXt-T) as Hydra deltas on one parametric builder."""

from .design.config import build_model, compose
from .design.model import Network, build
from .design.roadmap import DELTAS, STEPS
from .design.spec import BlockSpec, ModelSpec, StemSpec
from .design.timm_models import register as _register_in_timm

_register_in_timm()  # timm.create_model("modernize_<step>") for every model of Figure 2 (design/timm_models.py)

__all__ = ["DELTAS", "STEPS", "BlockSpec", "ModelSpec", "Network", "StemSpec", "build", "build_model", "compose"]
