"""A weights file's record: which model the weights are and what they expect of an image, read from beside or inside
the file, so that the weights alone are enough to evaluate them (task=eval eval.weights=...).

Where the record is:
- a run folder, or its last.pt / weights.pt: the run's config.yaml (the model as the profile trained it) and its
  summary.json's `preprocessing` (runs that finished before it was recorded: derived from config.yaml, by the same
  function that records it, `run_preprocessing`);
- a file `python -m modernize.export` wrote: its model card (inside a .safetensors file, or the .json beside it).
Any other file (an official, timm or torchvision checkpoint, a bare state dict) has none: the typed settings say
which model it is, and its preprocessing is theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from ..design.config import model_spec, run_label_of
from ..design.export import card_of, preprocessing_of_card, spec_of_card
from ..design.preprocessing import Preprocessing, RecordError, preprocessing_from_dict
from ..design.spec import ModelSpec
from ..design.weights import RUN_WEIGHT_FILES
from ..io import read_json
from .proxy import run_preprocessing, run_spec


@dataclass(frozen=True)
class WeightsRecord:
    """What the weights in a file are, as their run recorded it."""

    source: str  # where it was read, for messages and eval.json
    label: str  # the run's label (a roadmap step, or deltas)
    spec: ModelSpec  # the model as trained: width, classes, layer scale, stem stride
    preprocessing: Preprocessing
    profile: str | None
    data: dict[str, Any]  # the data node it trained on: name, root, ...


def weights_in(path: Path) -> Path:
    """The weights file `eval.weights` names: the file itself, or a run folder's weights.pt, else its last.pt."""
    if not path.is_dir():
        return path
    found = next((path / name for name in RUN_WEIGHT_FILES if (path / name).is_file()), None)
    if found is None:
        what = "a run folder" if (path / "config.yaml").is_file() else "a folder"
        raise RecordError(f"eval.weights={path} is {what} without weights (neither {' nor '.join(RUN_WEIGHT_FILES)})")
    return found


def record_of(path: Path, state_dict: dict[str, torch.Tensor]) -> WeightsRecord | None:
    """The record of the weights file `path` (whose weights are `state_dict`); None where it has none."""
    card = card_of(path)
    if card is not None:
        spec = spec_of_card(card)
        if "num_classes" not in card and "head.fc.weight" in state_dict:  # version-1 cards: the head says it
            spec = spec_of_card(card, num_classes=int(state_dict["head.fc.weight"].shape[0]))
        return WeightsRecord(source=f"the model card of {path.name}", label=str(card.get("step", "custom")),
                             spec=spec, preprocessing=preprocessing_of_card(card), profile=card.get("profile"),
                             data={"name": card.get("data"), "root": card.get("data_root")})
    config = path.parent / "config.yaml"
    if path.name not in RUN_WEIGHT_FILES or not config.is_file():
        return None
    cfg = OmegaConf.load(config)
    head = model_spec(cfg).classifier_weight
    classes = state_dict.get(head)
    if classes is None:
        raise RecordError(f"{path} holds no {head}: it is not the weights of the run in {path.parent}")
    summary = _summary(path.parent)
    recorded = summary.get("preprocessing")
    preprocessing = (preprocessing_from_dict(recorded, f"{path.parent / 'summary.json'}") if recorded is not None
                     else run_preprocessing(cfg))
    return WeightsRecord(source=f"{config}", label=run_label_of(cfg), spec=run_spec(cfg, int(classes.shape[0])),
                         preprocessing=preprocessing, profile=str(cfg.profile.name),
                         data=OmegaConf.to_container(cfg.data, resolve=True))


def _summary(run_dir: Path) -> dict[str, Any]:
    try:
        summary = read_json(run_dir / "summary.json")
    except (OSError, ValueError):
        return {}  # an unfinished run: its config.yaml is the record
    return summary if isinstance(summary, dict) else {}
