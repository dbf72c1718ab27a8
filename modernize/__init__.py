"""modernize: the ConvNeXt roadmap (ResNet-50 -> ConvNeXt-T) as Hydra deltas on one parametric builder.

Importing the package needs torch and timm only: building or loading a model from its spec or an exported file's
record needs nothing else. `build_model` and `compose` read the Hydra configs (conf/), so they import hydra and
omegaconf when first used; training and results import wandb where they log.
"""

from .design.model import Network, build
from .design.roadmap import DELTAS, STEPS
from .design.spec import BlockSpec, ModelSpec, StemSpec
from .design.timm_models import register as _register_in_timm

_register_in_timm()  # timm.create_model("modernize_<step>") for every model of Figure 2 (design/timm_models.py)

__all__ = ["DELTAS", "STEPS", "BlockSpec", "ModelSpec", "Network", "StemSpec", "build", "build_model", "compose"]

_CONFIG_API = ("build_model", "compose")  # in modernize.design.config, which imports hydra and omegaconf


def __getattr__(name: str):
    if name in _CONFIG_API:
        from .design import config

        return getattr(config, name)
    raise AttributeError(f"module 'modernize' has no attribute {name!r}")
