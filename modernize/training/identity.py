"""A run's identity: what it trains, hashed (config_hash), and how two runs' trained settings differ. The hash names a
run in its checkpoint and summary, so a folder holding another config's run is refused rather than resumed or
overwritten; `python -m modernize.compare` and the refusals name the differences (setting_differences).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..design.config import LABEL_KEY
from .proxy import effective_recipe, is_folder_data
from .settings import NOT_TRAINED_NODES, not_hashed


HASHED_LABEL_KEY = "step_name"  # the label's key when the committed runs were hashed


def config_hash(cfg: DictConfig) -> str:
    """A short hash of what the run trains (hashed_settings)."""
    return hashlib.sha256(json.dumps(hashed_settings(cfg), sort_keys=True).encode()).hexdigest()[:12]


def hashed_settings(cfg: DictConfig) -> dict[str, Any]:
    """What the run trains: not where it is written or how it is logged, nor the settings that say how it runs
    (modernize.training.settings, the one list of them).

    Settings the run does not use are left out, so adding one to the recipe left the hash of every run that does
    not use it, committed ones included, as it was (unused_recipe_settings); and the recipe's EMA decay is hashed as
    null where the profile's ema_rule is "disabled", as before EMA was part of the recipe."""
    data = OmegaConf.to_container(cfg, resolve=True)
    if LABEL_KEY in data:  # hashed under the key's old name, so every committed run keeps its hash
        data[HASHED_LABEL_KEY] = data.pop(LABEL_KEY)
    for key in NOT_TRAINED_NODES:
        data.pop(key, None)
    for node, keys in not_hashed().items():
        for key in keys:
            data.get(node, {}).pop(key, None)
    recipe, profile = data.get("recipe", {}), data.get("profile", {})
    if profile.get("ema_rule") == "disabled":
        profile.pop("ema_rule")
        recipe["ema_decay"] = None
    for key in unused_recipe_settings(cfg):
        recipe.pop(key, None)
    return data


def setting_differences(theirs: DictConfig, ours: DictConfig, limit: int = 4) -> str:
    """The trained settings two configs differ in, as 'profile.epochs: 1 vs 6' (theirs first), at most `limit`."""
    from ..design.config import flattened

    a, b = flattened(hashed_settings(theirs)), flattened(hashed_settings(ours))
    missing = object()  # a setting one of them does not have (not the same as null)
    lines = [f"{key}: {_shown(a.get(key, missing), missing)} vs {_shown(b.get(key, missing), missing)}"
             for key in sorted(a.keys() | b.keys()) if a.get(key, missing) != b.get(key, missing)]
    more = f" and {len(lines) - limit} more" if len(lines) > limit else ""
    return ", ".join(lines[:limit]) + more


def _shown(value: Any, missing: object) -> str:
    return "(none)" if value is missing else json.dumps(value)


def unused_recipe_settings(cfg: DictConfig) -> list[str]:
    """Recipe settings a run does not read: an in-memory data set's batched augmentation (modernize.data.augment) erases
    with the mean colour whatever random_erasing_mode says, runs no loader pipeline, and uses the interpolation only
    in RandAugment's geometric ops; folder data sets use all three (augment.folder_transforms)."""
    if is_folder_data(cfg):
        return []
    unused = ["random_erasing_mode", "pipeline"]
    if not effective_recipe(cfg)[1]["randaugment"]:
        unused.append("interpolation")
    return unused
