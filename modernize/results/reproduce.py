"""The commands that reproduce a result folder, read back from its runs' config.yaml: the make target where it is
the same, then the run.py multiruns and the tabulation it runs (the report page's "Reproduce:" block).

What the runs share (profile, data, seeds, where they are written) and every setting that differs from the named
profile and data configs and conf/config.yaml's defaults become the command's overrides, except the settings that say
only how a run executed and leave its numbers as they are (modernize.training.settings: workers, logging, resume,
checkpoint cadence, ...).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..design.config import CONF_DIR, flattened
from ..design.roadmap import STEPS
from ..training.settings import reproduces_without
from ..training.runs import run_folders
from ..training.sweeps import PEER_MODELS, RUNS_ROOT, Sweep



def override_value(v: Any) -> str:
    """A value as Hydra's command line writes it."""
    if isinstance(v, bool):
        return str(v).lower()
    if v is None:
        return "null"
    if isinstance(v, list):
        return "[" + ",".join(override_value(x) for x in v) + "]"
    return str(v)


def load_yaml(path: Path) -> dict | None:
    return yaml.safe_load(path.read_text()) if path.exists() else None


def settings(sweep: Path) -> dict[str, Any] | None:
    """What the runs of a sweep share: profile, data, seeds, out_root, sweep_name, kernel sizes, and the overrides
    (key=value) of every setting that differs from conf/profile/<profile>.yaml, conf/data/<data>.yaml and
    conf/config.yaml."""
    configs = [load_yaml(run / "config.yaml") for runs in run_folders(sweep).values() for run in runs
               if (run / "config.yaml").exists()]
    if not configs:
        return None
    first = configs[0]
    profile, data = first["profile"]["name"], first["data"]["name"]
    defaults = {
        "profile": load_yaml(CONF_DIR / "profile" / f"{profile}.yaml"),
        "data": load_yaml(CONF_DIR / "data" / f"{data}.yaml"),
        "train": (load_yaml(CONF_DIR / "config.yaml") or {}).get("train", {}),
    }
    overrides: dict[str, str] = {}
    for group, default in defaults.items():
        if default is None:
            continue
        ours, theirs = flattened(first.get(group, {}), f"{group}."), flattened(default, f"{group}.")
        for key, value in ours.items():
            if key in theirs and theirs[key] != value and not reproduces_without(key):
                overrides[key] = override_value(value)
    seeds = sorted({c["seed"] for c in configs})
    return {"profile": profile, "data": data, "seeds": ",".join(map(str, seeds)), "out_root": first["out_root"],
            "sweep_name": first["sweep_name"], "overrides": [f"{k}={v}" for k, v in overrides.items()],
            "kernels": sorted({c["model"].get("block", {}).get("kernel_size") for c in configs} - {None})}


@dataclass(frozen=True)
class ResultFolder:
    """What the commands of one result folder are made of."""

    kind: str  # roadmap | kernels | ablate | peers
    results: str  # the result folder
    settings: dict[str, Any]
    labels: list[str]

    @property
    def make_vars(self) -> list[str]:
        s = self.settings
        out = [f"PROFILE={s['profile']}", f"DATA={s['data']}", f"SEEDS={s['seeds']}"]
        return out + ([f"ARGS={shlex.quote(' '.join(s['overrides']))}"] if s["overrides"] else [])

    @property
    def conventional(self) -> bool:
        """Whether the sweep has the name its make target gives it."""
        s = self.settings
        return s["sweep_name"] == f"{self.kind}-{s['profile']}-{s['data']}"


def commands(kind: str, results: Path | None, sweep: Path | None, labels: list[str]) -> list[str]:
    """The commands that reproduce a folder (see the module's docstring)."""
    s = settings(sweep) if sweep else None
    if s is None:
        return [f"# no runs found for {results}: the commands need its sweep folder (--runs)"]
    results = str(results) if results else f"experiments/{kind}/{s['profile']}-{s['data']}"
    folder = ResultFolder(kind, results, s, labels)
    return {"roadmap": roadmap_commands, "kernels": kernel_commands, "ablate": ablation_commands,
            "peers": peer_commands}[kind](folder)


def sweep_of(folder: ResultFolder, **what) -> Sweep:
    """The sweep (modernize.training.sweeps) that made a result folder's runs, with what it trained."""
    s = folder.settings
    return Sweep(folder.kind, s["profile"], s["data"], seeds=s["seeds"], out_root=s["out_root"],
                 results=folder.results, name=s["sweep_name"], overrides=tuple(s["overrides"]), **what)


def roadmap_commands(folder: ResultFolder) -> list[str]:
    s, lines = folder.settings, []
    steps = [label for label in folder.labels if label in STEPS]
    extra = [label for label in folder.labels if label not in STEPS]
    make_vars = folder.make_vars + ([f"EXTRA={shlex.quote(' '.join(extra))}"] if extra else [])
    if s["sweep_name"] != f"roadmap-{s['profile']}-{s['data']}":
        make_vars.append(f"SWEEP={s['sweep_name']}")
    if s["out_root"] == RUNS_ROOT and folder.results == f"experiments/roadmap/{s['profile']}-{s['data']}" \
            and steps == list(STEPS):
        lines += [f"make roadmap {' '.join(make_vars)}", "# which runs:"]
    return lines + sweep_of(folder, steps=tuple(steps), extra=tuple(extra)).shown()


def kernel_commands(folder: ResultFolder) -> list[str]:
    s, lines = folder.settings, []
    if folder.conventional and s["out_root"] == RUNS_ROOT and folder.results.startswith("experiments/kernels/"):
        lines += [f"make kernels {' '.join(folder.make_vars)}", "# which runs:"]
    return lines + sweep_of(folder, kernels=tuple(s["kernels"])).shown()


def ablation_commands(folder: ResultFolder) -> list[str]:
    from .ablation import DELTAS, comparisons

    s, lines, make_vars = folder.settings, [], folder.make_vars
    present = [d for d in DELTAS if all(c.run_label in folder.labels for c in comparisons([d]))]
    subset = [] if present == list(DELTAS) else present
    if subset:
        make_vars.append(f"ABLATE_DELTAS={shlex.quote(' '.join(subset))}")
    if folder.conventional:
        if s["out_root"] != RUNS_ROOT:
            make_vars.append(f"RUNS={s['out_root']}")
        results_root = str(Path(folder.results).parent.parent)
        if results_root != "experiments":
            make_vars.append(f"RESULTS={results_root}")
        lines += [f"make ablate {' '.join(make_vars)}", "# which runs:"]
    return lines + sweep_of(folder, deltas=tuple(subset)).shown()


def peer_commands(folder: ResultFolder) -> list[str]:
    """make peers' command: the sweep's models (its labels) in make peers' order."""
    s, lines = folder.settings, []
    models = tuple(sorted(folder.labels, key=lambda m: PEER_MODELS.index(m) if m in PEER_MODELS else len(PEER_MODELS)))
    make_vars = folder.make_vars + ([f"MODELS={shlex.quote(' '.join(models))}"] if models != PEER_MODELS else [])
    if folder.conventional and s["out_root"] == RUNS_ROOT and folder.results.startswith("experiments/peers/"):
        lines += [f"make peers {' '.join(make_vars)}", "# which runs:"]
    return lines + sweep_of(folder, models=models).shown()
