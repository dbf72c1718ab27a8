"""modernize: the ConvNeXt roadmap (ResNet-50 -> ConvNeXt-T) as Hydra deltas on one parametric builder."""

from .design.config import build_model, compose
from .design.model import Network, build
from .design.roadmap import DELTAS, STEPS
from .design.spec import BlockSpec, ModelSpec, StemSpec

__all__ = ["DELTAS", "STEPS", "BlockSpec", "ModelSpec", "Network", "StemSpec", "build", "build_model", "compose"]
