"""modernize: the ConvNeXt roadmap (ResNet-50 -> ConvNeXt-T) as Hydra deltas on one parametric builder."""

from .config import build_model, compose
from .model import Network, build
from .roadmap import DELTAS, STEPS
from .spec import BlockSpec, ModelSpec, StemSpec

__all__ = ["DELTAS", "STEPS", "BlockSpec", "ModelSpec", "Network", "StemSpec", "build", "build_model", "compose"]
