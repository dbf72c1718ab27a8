"""Hydra composition shared by the CLI (run.py) and the Python API (`build_model`).

Importing this module registers what is generated rather than written (so it is written once): the `step` configs,
one per roadmap step, from modernize.design.roadmap.STEPS; the `model_spec_defaults` config every model config starts
from, from ModelSpec's defaults; and the `modernize.run_label` resolver that names run folders.
"""

from __future__ import annotations

import contextlib
import functools
import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from .roadmap import ADDED, ON_BASE, ROADMAP_BASE, STEPS, check_names, deltas_up_to, run_label
from .peers import PeerSpec, is_peer_config, peer_spec_from_dict
from .spec import ModelSpec, model_config_defaults, model_spec_from_dict

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the repository's conf/, the one copy of this path
# Folders (os.pathsep-separated) appended to Hydra's search path in every run (hydra_plugins/modernize_searchpath):
# the same as hydra.searchpath=[file://<dir>] on each command line. Each may hold delta/<name>.yaml, step/<name>.yaml.
SEARCH_PATH_ENV = "MODERNIZE_CONFIG_PATH"
NAMED_GROUPS = ("step", "delta")  # the config groups whose names are checked before Hydra starts
RUN_LABEL_RESOLVER = "modernize.run_label"  # ${modernize.run_label:} in conf/config.yaml: an OmegaConf resolver's name
MODEL_GROUP = "model"  # the model the deltas act on; one other than the roadmap's base is named in the run's label
# The key that holds a run's label in its config, summary.json, failed.json and last.pt. Records written before it
# was named so call it "step_name" (configs, checkpoints) or "step" (summaries, failures); the committed run folders
# were rewritten once, and recorded_label is the one reader of anyone else's.
LABEL_KEY, OLD_LABEL_KEYS = "label", ("step_name", "step")


def register_generated_configs() -> None:
    """Store the generated configs in Hydra's ConfigStore. Every process that composes imports this module first: run.py
    (through modernize.training.cli) and compose(); launcher workers receive the store with Hydra's singletons."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for step in STEPS:
        deltas = deltas_up_to(step)
        # the same node conf/step/<step>.yaml used to hold: every delta up to the step, then the step's name
        store.store(group="step", name=step, package="_global_", provider="modernize.design.roadmap",
                    node={"defaults": [*([{"/delta": deltas}] if deltas else []), "_self_"], LABEL_KEY: step})
    store.store(name="model_spec_defaults", node=model_config_defaults(), provider="modernize.design.spec")
    OmegaConf.register_new_resolver(RUN_LABEL_RESOLVER, _run_label_resolver, replace=True)


def label_from_overrides(overrides: Sequence[str]) -> str | None:
    """What a run made of `+step=` and `+delta=` overrides is: the step's name when it has no extra deltas, else
    modernize.design.roadmap.run_label of the deltas it applies ('gelu+layer_norm'). None without either (no label).
    Any delta override makes a run of deltas, `+delta=[]` too: `+step=X "+delta=[],[mine]"` sweeps X and X+mine.
    On a model other than the roadmap's base, the model is in the label (ON_BASE): `model=convnext_s` is
    'convnext_s', `model=resnet200 +step=separate_downsampling` is 'separate_downsampling@resnet200'.

    The label comes from the overrides because a composed config does not record which delta files built it.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    step, added, replaced, deltas_given, model = None, [], None, False, None
    relevant = [o for o in overrides
                if o.lstrip("+~").split("=", 1)[0].split("@", 1)[0] in (*NAMED_GROUPS, MODEL_GROUP)]
    for override in OverridesParser.create().parse_overrides(relevant):
        if override.is_sweep_override():
            continue  # a sweep's jobs carry one value each; only those get a label
        value = None if override.type == OverrideType.DEL else override.value()
        names = [value] if isinstance(value, str) else list(value or [])
        if override.key_or_group == MODEL_GROUP:
            model = names[0] if names and names[0] != ROADMAP_BASE else None
            continue
        if override.key_or_group == "step":
            step = names[0] if names else None
            continue
        deltas_given = True
        if override.type == OverrideType.ADD:  # +delta=[...]: after the step's deltas
            added += names
        else:  # delta=[...] replaces the step's deltas, ~delta drops them
            replaced = names
    label = deltas_label(step, added, replaced) if deltas_given else step
    if model is None:
        return label
    return model if label in (None, ROADMAP_BASE) else f"{label}{ON_BASE}{model}"


def deltas_label(step: str | None, added: list[str], replaced: list[str] | None) -> str:
    """The label of a step with deltas added (`+delta=`) or of the deltas that replace the step's (`delta=`)."""
    if replaced is None and step is not None and step not in STEPS:
        # a step from the user's search path: its own deltas are in its file, it keeps its name
        return step + "".join(ADDED + d for d in added)
    base = replaced if replaced is not None else deltas_up_to(step or STEPS[0])
    return run_label([*base, *added])


def with_run_label(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Write the run's label into the config's `label` (summary.json, W&B, the table, config_hash read it there).
    A roadmap step's config already holds its name, so its config and hash are unchanged."""
    label = label_from_overrides(overrides)
    if label is not None and OmegaConf.select(cfg, LABEL_KEY, default=None) != label:
        with open_dict(cfg):
            cfg[LABEL_KEY] = label
    return cfg


def _run_label_resolver(*, _root_: DictConfig) -> str:
    """${modernize.run_label:} in hydra.run.dir / hydra.sweep.subdir: the label, which Hydra needs before the task
    function can write it into the config."""
    overrides = OmegaConf.select(_root_, "hydra.overrides.task", default=None) or []
    return label_from_overrides(list(overrides)) or run_label_of(_root_)


@contextlib.contextmanager
def _hydra() -> Iterator[Any]:
    """Hydra initialized on the package's conf/ (and the folders of SEARCH_PATH_ENV), as run.py is."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if not CONF_DIR.is_dir():
        raise FileNotFoundError(f"Hydra config dir not found at {CONF_DIR}; install modernize from its repository "
                                f"(pip install -e .)")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield GlobalHydra.instance()


def config_names(group: str, overrides: Sequence[str] = ()) -> list[str]:
    """The options of a config group on the search path the overrides give (conf/, the folders of SEARCH_PATH_ENV,
    hydra.searchpath=[...]), roadmap order first."""
    from .roadmap import roadmap_first

    searchpath = [o for o in overrides if o.lstrip("+").startswith("hydra.searchpath=")]
    with _hydra() as hydra:
        return roadmap_first(hydra.config_loader().get_group_options(group, config_name="config",
                                                                        overrides=searchpath))


def check_step_overrides(overrides: Sequence[str]) -> None:
    """Reject unknown `step=` / `delta=` / `model=` names before Hydra starts, listing the names found on the search
    path (the roadmap's first, in its order); and a step or delta on a transformer (`model=swin_t +step=gelu`): the
    roadmap's deltas change the ConvNet builder's spec, which timm's Swin and ViT do not have."""
    requested: dict[str, list[str]] = {}
    for text in overrides:
        key = text.lstrip("+~").split("=", 1)[0]
        if key not in (*NAMED_GROUPS, MODEL_GROUP) or "=" not in text or (override := parsed(text)) is None:
            continue
        values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
        for value in values:
            requested.setdefault(key, []).extend([value] if isinstance(value, str) else list(value))
    user_folders = f"the folders added with hydra.searchpath=[file://<dir>] or ${SEARCH_PATH_ENV}"
    where = {"step": f"the roadmap's (modernize.design.roadmap.STEPS) and conf/step/<name>.yaml in {user_folders}",
             "delta": f"conf/delta/<name>.yaml in the package and in {user_folders}",
             "model": f"conf/model/<name>.yaml: ConvNets and the paper's transformers ({', '.join(peer_models())})"}
    for group, names in requested.items():
        check_names(group, names, config_names(group, overrides), hint=f"{group}s are {where[group]}")
    peers = [name for name in requested.get(MODEL_GROUP, []) if name in peer_models()]
    roadmap = [f"+{group}" for group in NAMED_GROUPS if group in requested]
    if peers and roadmap:
        raise ValueError(f"model={peers[0]} is timm's {peers[0]} (a transformer of the paper's tables), and "
                         f"{' and '.join(roadmap)} act on the ConvNet builder's spec, which it does not have: drop "
                         f"{' and '.join(roadmap)}, or choose a ConvNet (model=resnet50, resnet200, convnext_*)")


@functools.cache
def peer_models() -> tuple[str, ...]:
    """The model configs of the package that are transformers built by timm (modernize.design.peers)."""
    import yaml

    return tuple(sorted(path.stem for path in (CONF_DIR / "model").glob("*.yaml")
                        if is_peer_config(yaml.safe_load(path.read_text()) or {})))


def check_setting_keys(overrides: Sequence[str]) -> None:
    """Refuse a setting the config does not declare, before Hydra starts, in one line naming the closest declared
    settings. Without '+', Hydra's own refusal is six lines ending in "Key 'kernal_size' is not in struct", exit 1.
    With '+' (`+train.epochs=1`) Hydra appends the key, and no part of modernize reads an undeclared key, so the run
    would go on as if it were not there (`+train.epochs=1` trained the profile's 6 epochs).

    The settings declared are those of the config the command composes: its groups (`model=`, `profile=`, a user's
    `+step=` that declares keys of its own) are applied first, a sweep's first value standing for its jobs. Only a
    setting inside a node (a dotted key) is checked: `+<name>=` may select a config group, ours (`+step=`, `+delta=`)
    or one on a user's search path; hydra.* keys are Hydra's own; `++key=` forces a key in, as Hydra documents."""
    settings = [text for text in overrides if "=" in text and not text.startswith(("++", "~"))
                and is_setting(text.lstrip("+").split("=", 1)[0])]
    if not settings:
        return
    groups = [job_value(text) for text in overrides if text not in settings and "=" in text]
    with _hydra():
        from hydra import compose as hydra_compose
        from hydra.errors import HydraException

        try:
            composed = hydra_compose("config", overrides=groups)
        except HydraException:
            return  # an unknown group option (recipe=sgdr) or bad syntax: Hydra's own one-line message says which
        declared = [name for name in flattened(composed) if not name.startswith("hydra.")]
    for text in settings:
        key = text.lstrip("+").split("=", 1)[0]
        if any(name == key or name.startswith(key + ".") for name in declared):
            continue
        if text.startswith("+"):
            leaf = key.rsplit(".", 1)[-1]
            same_name = [name for name in declared if name.rsplit(".", 1)[-1] == leaf]
            hint = f"; the settings named {leaf}: {', '.join(same_name)} (set them without '+')" if same_name else ""
            raise ValueError(f"{text} adds {key}, which the config does not declare and no part of modernize reads: "
                             f"the run would ignore it{hint}")
        closest = closest_settings(key, declared)
        hint = f"; the closest declared: {', '.join(closest)}" if closest else ""
        raise ValueError(f"{text} sets {key}, which the config does not declare{hint} (python run.py <your "
                         f"overrides> --cfg job prints every setting)")


def closest_settings(key: str, declared: Sequence[str], count: int = 3) -> list[str]:
    """The declared settings most like `key`, by its last part first (train.epoch -> recipe.epochs, profile.epochs),
    then by the whole key; none that is not at least a little alike."""
    def likeness(name: str) -> float:
        return (difflib.SequenceMatcher(None, key.rsplit(".", 1)[-1], name.rsplit(".", 1)[-1]).ratio()
                + difflib.SequenceMatcher(None, key, name).ratio())

    ranked = sorted(declared, key=likeness, reverse=True)
    return [name for name in ranked[:count] if likeness(name) >= 1.2]


def parsed(text: str) -> Any:
    """One command-line override as Hydra parses it, or None for bad syntax (Hydra's own message then says where)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        (override,) = OverridesParser.create().parse_overrides([text])
    except HydraException:
        return None
    return override


def job_value(text: str) -> str:
    """An override as one job of a sweep sees it: a sweep's first value (`+step=a,b` -> `+step=a`)."""
    override = parsed(text)
    if override is None or not override.is_sweep_override():
        return text
    first = next(iter(override.sweep_iterator()))
    value = f"[{','.join(map(str, first))}]" if isinstance(first, list) else str(first)
    return f"{text.split('=', 1)[0]}={value}"


def is_setting(key: str) -> bool:
    """A dotted key of a setting (train.epochs), not a config group (model, delta@x, hydra/launcher) or hydra.*."""
    return "." in key and not any(c in key for c in "/@") and not key.startswith("hydra.")


def flattened(node: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf setting of a config (or a plain dict of one) under its dotted key: {"model.block.kernel_size": 7}."""
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=False)
    if not isinstance(node, dict):
        return {prefix.rstrip("."): node}
    leaves: dict[str, Any] = {}
    for name, child in node.items():
        leaves |= flattened(child, f"{prefix}{name}.")
    return leaves


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """The same config `python run.py <overrides>` would see (Hydra's compose API, same conf/ dir), labelled."""
    from hydra import compose as hydra_compose

    check_step_overrides(overrides)
    with _hydra():
        cfg = hydra_compose("config", overrides=list(overrides))
    return with_run_label(cfg, overrides)


def model_spec(cfg: DictConfig, **changes: Any) -> ModelSpec | PeerSpec:
    """The validated architecture of a composed config (the paper's: full width, 1000 classes): a ModelSpec, or
    for a transformer of the paper's tables (`model=swin_t`) the PeerSpec timm builds it from."""
    data = OmegaConf.to_container(cfg.model, resolve=True)
    spec = peer_spec_from_dict(data) if is_peer_config(data) else model_spec_from_dict(data)
    if changes:
        spec = replace(spec, **changes)
        spec.validate()
    return spec


def build_model(step: str = "resnet50", overrides: Sequence[str] = ()):
    """The nn.Module of a roadmap step (or of a step on the search path), composed through the very same Hydra
    configs as the CLI.

    >>> model = build_model("gelu", overrides=["model.block.kernel_size=9"])
    """
    from .model import build

    return build(model_spec(compose([f"+step={step}", *overrides])))


def run_label_of(cfg: DictConfig) -> str:
    """The run's label: the roadmap step, or what a run made of deltas is (with_run_label); 'custom' without."""
    return recorded_label(cfg) or "custom"


def kernel_size_of(cfg: DictConfig) -> int | None:
    """The block's kernel size (the kernel sweep's rows); None for a transformer, which has no block."""
    return OmegaConf.select(cfg, "model.block.kernel_size", default=None)


def recorded_label(record: Mapping | DictConfig) -> str | None:
    """The label a run's config, summary, failure or checkpoint records, under today's key or an old one."""
    for key in (LABEL_KEY, *OLD_LABEL_KEYS):
        value = record.get(key)
        if value is not None:
            return str(value)
    return None


register_generated_configs()
