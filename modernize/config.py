"""Hydra composition shared by the CLI (run.py) and the Python API (`build_model`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .roadmap import DELTAS, STEPS, check_names
from .spec import ModelSpec, model_spec_from_dict

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def check_step_overrides(overrides: Sequence[str]) -> None:
    """Reject unknown `step=` / `delta=` names before Hydra starts, listing the valid ones in roadmap order."""
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key not in ("step", "delta") or not value:
            continue
        names = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        check_names(key, names, STEPS if key == "step" else DELTAS)


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The same config `python run.py <overrides>` would see (Hydra's compose API, same conf/ dir)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    check_step_overrides(overrides)
    if not CONF_DIR.is_dir():
        raise FileNotFoundError(f"Hydra config dir not found at {CONF_DIR}; install modernize from its repository "
                                f"(pip install -e .)")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def model_spec(cfg: DictConfig, **changes: Any) -> ModelSpec:
    """The validated architecture of a composed config (the paper's: full width, 1000 classes)."""
    spec = model_spec_from_dict(OmegaConf.to_container(cfg.model, resolve=True))
    if changes:
        spec = replace(spec, **changes)
        spec.validate()
    return spec


def run_spec(cfg: DictConfig, num_classes: int) -> ModelSpec:
    """The architecture as trained under the profile (modernize.proxy.scale_model): same design, widths scaled,
    the data's class count, and the profile's stem-stride, layer-scale and drop-path rules."""
    from .proxy import scale_model

    return scale_model(model_spec(cfg), cfg, num_classes)


def build_model(step: str = "resnet50", overrides: Sequence[str] = ()):
    """The nn.Module of a roadmap step, composed through the very same Hydra configs as the CLI.

    >>> model = build_model("gelu", overrides=["model.block.kernel_size=9"])
    """
    from .model import build

    check_names("step", [step], STEPS)
    return build(model_spec(compose([f"+step={step}", *overrides])))


def step_label(cfg: DictConfig) -> str:
    return str(OmegaConf.select(cfg, "step_name", default=None) or "custom")


def config_hash(cfg: DictConfig) -> str:
    """A short hash of everything that changes a result (not where it is written or how it is logged)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in ("out_root", "sweep_name", "logger", "hydra"):
        data.pop(key, None)
    for key in ("workers", "log_every_steps", "resume", "checkpoint_every_steps", "throughput_batch",
                "threads"):
        data.get("train", {}).pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
