"""A sweep from launch to table, defined once: the Hydra multiruns that train it, how they are launched, and the
command that tabulates it. `make roadmap`, `make kernels` and `make ablate` run it:

    python -m modernize.sweep run roadmap --profile cpu --data fashion_mnist --seeds 0,1,2 [--extra LABEL ...]
    python -m modernize.sweep run kernels --profile cpu --data fashion_mnist --seeds 0
    python -m modernize.sweep run ablate  --profile smoke --data synthetic --deltas kernel_size
    python -m modernize.sweep run peers   --profile cpu --data fashion_mnist --seeds 0,1,2 --models "swin_t deit_s"

and the report shows the same commands for a result folder (modernize.results.reproduce). The multiruns run one
after another (a Hydra sweep is a product, and steps x extras is not what is wanted), each seed-major so that a sweep
cut short leaves whole seeds; a failed run fails only itself, and the table is written whatever happened. The exit
status is the table's when tabulating fails or finds failed or unfinished rows, else the first failed multirun's.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from ..design.config import CONF_DIR
from ..design.roadmap import KERNEL_SIZES, STEPS, label_deltas

KINDS = ("roadmap", "kernels", "ablate", "peers")
# make peers: the ConvNeXts of Tables 1 and 2 beside the transformers the paper compares them with (its rows)
PEER_MODELS = ("convnext_t", "swin_t", "convnext_s", "swin_s", "convnext_b", "swin_b", "convnext_iso_s", "deit_s")
RUNS_ROOT = "experiments/runs"
KERNEL_SUBDIR = "hydra.sweep.subdir=k${model.block.kernel_size}-seed${seed}"  # run folders k<size>-seed<N>


@dataclass(frozen=True)
class Sweep:
    """One sweep: its kind, profile, data and seeds, where its runs and its table go, the user's overrides (ARGS),
    and what it trains: the roadmap's steps and extra labels, the kernel sizes, or the ablation's deltas (all: ())."""

    kind: str
    profile: str
    data: str
    seeds: str = "0"
    out_root: str = RUNS_ROOT
    results: str | None = None
    name: str | None = None
    overrides: tuple[str, ...] = ()
    steps: tuple[str, ...] = STEPS
    extra: tuple[str, ...] = ()
    kernels: tuple[int, ...] = KERNEL_SIZES
    deltas: tuple[str, ...] = ()
    models: tuple[str, ...] = PEER_MODELS

    @property
    def sweep_name(self) -> str:
        return self.name or f"{self.kind}-{self.profile}-{self.data}"

    @property
    def sweep_dir(self) -> str:
        return f"{self.out_root}/{self.sweep_name}"

    @property
    def results_dir(self) -> str:
        return self.results or f"experiments/{self.kind}/{self.profile}-{self.data}"

    @property
    def common(self) -> list[str]:
        return [f"profile={self.profile}", f"data={self.data}", f"out_root={self.out_root}",
                f"sweep_name={self.sweep_name}", *self.overrides]

    def multiruns(self, shown: bool = False) -> list[list[str]]:
        """The overrides of each `python run.py -m` the sweep runs (before the launcher's); `shown`: as a reader
        re-types them, a delta list as the command that prints it and the kernel subdir quoted for the shell."""
        seeds = f"seed={self.seeds}"
        if self.kind == "kernels":
            key, value = KERNEL_SUBDIR.split("=", 1)
            return [["+step=kernel_size", f"model.block.kernel_size={','.join(map(str, self.kernels))}", seeds,
                     *self.common, f"{key}='{value}'" if shown else KERNEL_SUBDIR]]
        if self.kind == "ablate":
            return [[seeds, self.delta_override(shown), *self.common]]
        if self.kind == "peers":
            return [[seeds, f"model={','.join(self.models)}", *self.common]]
        runs = [[seeds, f"+step={','.join(self.steps)}", *self.common]] if self.steps else []
        if self.extra:
            runs.append([seeds, self.delta_override(shown), *self.common])
        return runs

    def delta_override(self, shown: bool) -> str:
        """+delta= of the ablation's runs or of the roadmap's extra labels."""
        if self.kind == "ablate":
            deltas = f" --deltas {' '.join(self.deltas)}" if self.deltas else ""
            return (f"\"+delta=$(python -m modernize.ablate --delta-lists{deltas})\"" if shown
                    else f"+delta={ablation_delta_lists(self.deltas)}")
        return (f"\"+delta=$(python -m modernize.sweep --delta-lists {' '.join(self.extra)})\"" if shown
                else f"+delta={extra_delta_lists(self.extra, self.overrides)}")

    def tabulation(self) -> list[str]:
        """The `python -m` arguments that tabulate the sweep."""
        if self.kind == "ablate":
            return ["modernize.ablate", self.sweep_dir, "--out", self.results_dir]
        if self.kind == "peers":  # ConvNeXt-T may be the roadmap's last step, trained in the roadmap's sweep
            roadmap = f"{self.out_root}/roadmap-{self.profile}-{self.data}"
            return ["modernize.peers", self.sweep_dir, "--convnext-from", roadmap, "--out", self.results_dir]
        by_kernel = ["--by-kernel"] if self.kind == "kernels" else []
        return ["modernize.tabulate", self.sweep_dir, *by_kernel, "--out", self.results_dir]

    def shown(self) -> list[str]:
        """The commands as a reader re-types them: the multiruns, then the tabulation."""
        return ["python run.py -m " + " ".join(overrides) for overrides in self.multiruns(shown=True)] + \
            ["python -m " + " ".join(self.tabulation())]


def extra_delta_lists(labels: tuple[str, ...], overrides: Sequence[str] = ()) -> str:
    """The +delta= sweep value that trains these row labels: [recipe,...,silu],[...]. Every delta must exist (in the
    package or a folder the overrides or $MODERNIZE_CONFIG_PATH add), or a ValueError names the unknown ones: a
    misspelt label fails here, before the sweep's first run, not after the roadmap has trained."""
    from ..design.config import check_step_overrides

    value = ",".join(f"[{','.join(label_deltas(label))}]" for label in labels)
    check_step_overrides([f"+delta={value}", *overrides])
    return value


def ablation_delta_lists(deltas: tuple[str, ...]) -> str:
    from ..design.ablation_plan import delta_lists

    return delta_lists(list(deltas) or None)


def run_sweep(sweep: Sweep, multiruns: list[list[str]], launch: list[str], wandb: str) -> int:
    """Train the sweep's multiruns (each launched with `launch`), then tabulate it whatever happened."""
    status = 0
    for overrides in multiruns:
        command = [sys.executable, str(CONF_DIR.parent / "run.py"), "-m", *overrides, *launch]
        status = status or subprocess.run(command).returncode
    tabulation = sweep.tabulation()
    if sweep.kind in ("roadmap", "kernels"):
        tabulation += ["--wandb", wandb]
    table_status = subprocess.run([sys.executable, "-m", *tabulation]).returncode
    return table_status or status


def run_command(args: argparse.Namespace) -> int:
    """`python -m modernize.sweep run ...`: the sweep of the arguments, its labels checked before anything runs."""
    from ..design.config import config_names
    from .launch import launch_overrides

    sweep = Sweep(args.kind, args.profile, args.data, seeds=args.seeds, out_root=args.runs,
                  results=f"{args.results}/{args.kind}/{args.profile}-{args.data}", name=args.sweep_name,
                  overrides=tuple(shlex.split(args.args)), extra=tuple(args.extra.split()),
                  deltas=tuple(args.deltas.split()), models=tuple(args.models.split()) or PEER_MODELS)
    try:
        for group, name, plural in (("profile", args.profile, "profiles"), ("data", args.data, "data sets")):
            known = config_names(group)
            if name not in known:
                raise ValueError(f"unknown {group} {name!r}; known {plural}: {', '.join(known)}")
        multiruns = sweep.multiruns()  # every label and delta is known, or one line before anything runs
        launch = launch_overrides(args.profile, args.launcher or None, args.runs_at_once)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return run_sweep(sweep, multiruns, launch, args.wandb)


def add_run_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="train a sweep (roadmap, kernels, ablate, peers) and tabulate it")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--data", default="fashion_mnist")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--runs", default=RUNS_ROOT, help="where the sweep folder goes (out_root)")
    parser.add_argument("--results", default="experiments", help="where <kind>/<profile>-<data>/ goes")
    parser.add_argument("--sweep-name", help="the sweep folder's name (default: <kind>-<profile>-<data>)")
    parser.add_argument("--args", default="", help="overrides for every run, as one string (make's ARGS)")
    parser.add_argument("--extra", default="", help="roadmap: extra row labels, space-separated (make's EXTRA)")
    parser.add_argument("--deltas", default="", help="ablate: only these deltas' rows (make's ABLATE_DELTAS)")
    parser.add_argument("--models", default="", help="peers: only these models, space-separated (make's MODELS; "
                        "default: ConvNeXt-T/S/B, isotropic ConvNeXt-S and their peers)")
    parser.add_argument("--launcher", default="", help="this Hydra launcher, as given (basic, joblib, slurm)")
    parser.add_argument("--runs-at-once", type=int, help="this many runs at once instead of the profile's")
    parser.add_argument("--wandb", default="auto", help="W&B mode of the table run")


def main(argv: list[str] | None = None) -> int:
    """`python -m modernize.sweep`: `run <kind> ...` trains and tabulates a sweep; --steps, --delta-lists and --launch
    print the values a sweep passes to Hydra (modernize.training.launch)."""
    from .launch import launch_overrides

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        parser = argparse.ArgumentParser(prog="python -m modernize.sweep")
        add_run_parser(parser.add_subparsers(dest="command", required=True))
        return run_command(parser.parse_args(argv))
    parser = argparse.ArgumentParser(prog="python -m modernize.sweep", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--steps", action="store_true", help="the roadmap's steps, comma-separated")
    group.add_argument("--delta-lists", nargs="+", metavar="LABEL",
                       help="the +delta= sweep value that trains these row labels, e.g. separate_downsampling+silu")
    group.add_argument("--launch", metavar="PROFILE", help="the launcher overrides for a sweep of this profile")
    parser.add_argument("--launcher", help="with --launch: this Hydra launcher, as given (basic, joblib, slurm)")
    parser.add_argument("--runs-at-once", type=int, help="with --launch: this many runs at once instead of the "
                        "profile's runs_at_once")
    args = parser.parse_args(argv)
    try:
        if args.launch:
            from ..design.config import config_names

            profiles = config_names("profile")
            if args.launch not in profiles:
                raise ValueError(f"unknown profile {args.launch!r}; known profiles: {', '.join(profiles)}")
            print(" ".join(launch_overrides(args.launch, args.launcher or None, args.runs_at_once)))
        else:
            print(",".join(STEPS) if args.steps else extra_delta_lists(tuple(args.delta_lists)))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

