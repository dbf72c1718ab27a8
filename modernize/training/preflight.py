"""`python run.py task=preflight profile=imagenet data.root=<folder> [launch settings]`: what a user runs on the
target machine before spending GPU-days. Every check the run would fail (or waste time) on, at once, as a table with
a verdict per line (go / warn / no-go), then the overall verdict; preflight.json in the run folder holds the same.
Exit status 0 for go, 1 for no-go.

- config: the run's own checks (modernize.training.checks), as the run would refuse them;
- data: classes and images per split against ImageNet-1K's (a mismatch warns, with the numbers: a subset is a
  choice), and a seeded sample of images decoded through the recipe's transforms (an unreadable one is named);
- devices: count, memory, bf16, and whether the launch's processes match them;
- batch: processes x device batch x accumulation = the recipe's global batch, and the lr (batch_plan);
- speed: a few timed training steps at the run's size, images/s, the estimated time per epoch and for the whole run
  (against SLURM's time limit and requeues);
- disk: last.pt's size, measured by serializing the model, optimizer and EMA, against the output folder's free space;
- wandb: the mode the run will log in;
- command: the exact command it would launch, and for SLURM the sbatch settings.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ..io import atomic_write_json
from .runtime import RunError

GO, WARN, NO_GO = "go", "warn", "no-go"
IMAGENET_1K = {"classes": 1000, "train": 1_281_167, "val": 50_000}  # ILSVRC-2012
ATOMIC_COPIES = 2  # last.pt is written beside the previous one, then renamed (modernize.io.atomic_write)


@dataclass
class Check:
    name: str
    verdict: str
    detail: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Launch:
    """How the run would be started: by `launcher` (python, torchrun or slurm), with `processes` in all."""

    launcher: str
    processes: int
    per_node: int
    nodes: int = 1
    gpus_per_node: int | None = None
    time_limit_min: float | None = None  # SLURM: a job's limit x (1 + requeues): a run resumes across requeues
    command: str = ""
    sbatch: dict[str, Any] | None = None


def launch_of(cfg: DictConfig, task_overrides: list[str], hydra_overrides: list[str],
              launcher: DictConfig | None) -> Launch:
    """The launch this command describes: SLURM where hydra/launcher=slurm, torchrun under torchrun or on a node with
    several GPUs, else one python process."""
    kept = [o for o in task_overrides if not o.startswith(("task=", "preflight."))]
    args = " ".join(kept)
    if launcher is not None and "SlurmLauncher" in str(launcher.get("_target_", "")):
        nodes, per_node = int(launcher.nodes), int(launcher.tasks_per_node)
        sbatch = {key: OmegaConf.select(launcher, key) for key in ("nodes", "tasks_per_node", "gpus_per_node",
                                                                   "cpus_per_task", "mem_gb", "timeout_min",
                                                                   "max_num_timeout", "partition", "account")}
        launch_args = " ".join(o for o in hydra_overrides if o.startswith(("hydra/launcher", "hydra.launcher")))
        return Launch("slurm", nodes * per_node, per_node, nodes, int(launcher.gpus_per_node),
                      float(launcher.timeout_min) * (1 + int(launcher.max_num_timeout)),
                      f"python run.py -m {launch_args} {args}".strip(), sbatch)
    if "WORLD_SIZE" in os.environ:
        count = int(os.environ["WORLD_SIZE"])
        return Launch("torchrun", count, int(os.environ.get("LOCAL_WORLD_SIZE", count)),
                      command=f"torchrun --nproc_per_node={count} run.py {args}".strip())
    gpus = torch.cuda.device_count() if _uses_cuda(cfg) else 0
    if gpus > 1:
        return Launch("torchrun", gpus, gpus, command=f"torchrun --nproc_per_node={gpus} run.py {args}".strip())
    return Launch("python", 1, 1, command=f"python run.py {args}".strip())


def _uses_cuda(cfg: DictConfig) -> bool:
    from .runtime import wants_cuda

    return wants_cuda(str(cfg.train.device))


# ------------------------------------------------------------------------------------------------------ checks
def config_check(cfg: DictConfig) -> Check:
    from .checks import check_config, positive

    try:
        check_config(cfg)
        positive("preflight.sample_images", cfg.preflight.sample_images, integer=True)
        positive("preflight.steps", cfg.preflight.steps, integer=True)
        positive("preflight.timed_batch", cfg.preflight.timed_batch, allow_none=True, integer=True)
    except RunError as e:
        return Check("config", NO_GO, str(e))
    return Check("config", GO, "every setting in its range")


def data_check(cfg: DictConfig, recipe: DictConfig, sample: int) -> tuple[Check, Any]:
    """(the check, the loaded data or None)."""
    from ..data import datasets

    try:
        data = datasets.load_for_run(cfg, recipe)
    except (datasets.DataError, ValueError) as e:
        return Check("data", NO_GO, str(e).splitlines()[0]), None
    counts = {"classes": data.num_classes, "train": len(data.train), "val": len(data.val)}
    text = f"{counts['classes']} classes, {counts['train']:,} train / {counts['val']:,} val images"
    if not datasets.is_folder(cfg.data.name):
        return Check("data", GO, f"{cfg.data.name}: {text}, held in memory", counts), data
    bad = unreadable_in_sample(data, sample, cfg.seed)
    decoded = f"{min(sample, counts['train'] + counts['val'])} sampled images decode through the recipe's transforms"
    if bad:
        return Check("data", NO_GO, f"{text}; unreadable: {', '.join(bad[:5])}"
                     f"{f' and {len(bad) - 5} more' if len(bad) > 5 else ''} (python -m modernize.datasets --check "
                     f"{cfg.data.root} lists every one)", counts | {"unreadable": bad}), data
    differs = [f"{key} {counts[key]:,} (ImageNet-1K: {IMAGENET_1K[key]:,})" for key in IMAGENET_1K
               if counts[key] != IMAGENET_1K[key]]
    if differs:
        return Check("data", WARN, f"{text}; not ImageNet-1K: {', '.join(differs)}; {decoded}", counts), data
    return Check("data", GO, f"{text}, as ImageNet-1K; {decoded}", counts), data


def unreadable_in_sample(data, sample: int, seed: int) -> list[str]:
    """The files of a seeded sample (half from each split) that do not decode through their split's transforms."""
    from ..data.datasets import DataError

    generator = torch.Generator().manual_seed(seed)
    bad = []
    for split in (data.train, data.val):
        n = min(len(split), max(1, sample // 2))
        for i in torch.randperm(len(split), generator=generator)[:n].tolist():
            try:
                split[i]
            except DataError:
                bad.append(split.samples[i][0])
    return bad


def devices_check(cfg: DictConfig, launch: Launch) -> Check:
    from .checks import check_training_device

    try:
        check_training_device(cfg)
    except RunError as e:
        return Check("devices", NO_GO, str(e))
    if launch.gpus_per_node is not None and launch.per_node != launch.gpus_per_node:
        return Check("devices", NO_GO, f"the launcher starts {launch.per_node} tasks per node for "
                     f"{launch.gpus_per_node} GPUs per node: set hydra.launcher.tasks_per_node="
                     f"{launch.gpus_per_node} (one task per GPU)")
    if not _uses_cuda(cfg):
        return Check("devices", GO, f"cpu ({os.cpu_count()} cores); {launch.processes} process(es)"
                     f"{' on gloo' if launch.processes > 1 else ''}",
                     {"kind": "cpu", "count": 0})
    count = torch.cuda.device_count()
    names = {torch.cuda.get_device_name(i) for i in range(count)}
    memory = min(torch.cuda.get_device_properties(i).total_memory for i in range(count))
    values = {"kind": "cuda", "count": count, "names": sorted(names), "memory_gib": round(memory / 2**30, 1),
              "bf16": torch.cuda.is_bf16_supported()}
    text = f"{count} x {', '.join(sorted(names))} ({values['memory_gib']} GiB), bf16 {values['bf16']}"
    if cfg.train.precision == "bf16" and not values["bf16"]:
        return Check("devices", NO_GO, f"{text}: train.precision=bf16 is not supported here; use fp16", values)
    if launch.per_node > count:
        return Check("devices", NO_GO, f"{text}: {launch.per_node} processes per node would share them", values)
    return Check("devices", GO, f"{text}; {launch.per_node} process(es) per node", values)


def batch_check(cfg: DictConfig, launch: Launch, device: torch.device, run_plan) -> tuple[Check, Any]:
    from .train import batch_plan_of

    try:
        plan = batch_plan_of(cfg, launch.processes, device, run_plan)
    except RunError as e:
        return Check("batch", NO_GO, str(e)), None
    return Check("batch", GO, plan.line().removeprefix("batch: "), plan.as_dict()), plan


def timed_steps(cfg: DictConfig, data, device: torch.device, run_plan, batch: int,
                steps: int) -> tuple[float, torch.nn.Module, Any]:
    """Images/s of the run's training step at its size on this device (after one warm-up step), and the model and
    step it timed (their state is last.pt's)."""
    from .engine import memory_format_of, random_batch, timed
    from .train import step_to_measure

    step = step_to_measure(cfg, data.num_classes, device, run_plan)
    x, y = random_batch(batch, int(cfg.profile.resolution), data.num_classes, device,
                        memory_format_of(cfg.train.channels_last))
    step(x, y)  # warm-up: allocator, cuDNN's algorithm search, the optimizer's state
    return batch * steps / timed(lambda: step(x, y), steps, device), step.model, step


def speed_check(images_per_s: float, launch: Launch, train_images: int, epochs: int, timed_batch: int) -> Check:
    """The estimate assumes the processes scale linearly and the loader keeps up (make bench measures it)."""
    epoch_h = train_images / (images_per_s * launch.processes) / 3600
    run_h = epoch_h * epochs
    values = {"images_per_s_per_process": round(images_per_s, 2), "timed_batch": timed_batch,
              "epoch_s": round(epoch_h * 3600, 2), "run_s": round(run_h * 3600, 2)}
    text = (f"{images_per_s:.1f} img/s per process at batch {timed_batch}; estimated {epoch_h:.2f} h per epoch, "
            f"{run_h:.1f} h for {epochs} epochs on {launch.processes} process(es) (training steps only)")
    if launch.time_limit_min is not None and run_h * 60 > launch.time_limit_min:
        return Check("speed", NO_GO, f"{text}: more than SLURM allows ({launch.time_limit_min / 60:.1f} h: "
                     f"timeout_min x (1 + max_num_timeout)); raise hydra.launcher.max_num_timeout or "
                     f"hydra.launcher.nodes", values)
    return Check("speed", GO, text, values)


def checkpoint_bytes(model: torch.nn.Module, step) -> int:
    """The size of last.pt's weights and optimizer state (and EMA), as torch.save writes them."""
    state = {"model": model.state_dict(), "optimizer": step.optimizer.state_dict(),
             "ema": step.ema.state_dict() if step.ema is not None else None}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.tell()


def disk_check(size: int, folder: Path) -> Check:
    existing = folder
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    need = size * ATOMIC_COPIES
    values = {"checkpoint_bytes": size, "free_bytes": free, "folder": str(folder)}
    text = (f"last.pt {size / 2**20:,.0f} MiB (x{ATOMIC_COPIES} while it is replaced); {free / 2**30:,.1f} GiB free "
            f"in {existing}")
    return Check("disk", GO if free >= need else NO_GO, text if free >= need else f"{text}: not enough; free space "
                 f"or set out_root=<folder on a larger disk>", values)


def wandb_check(cfg: DictConfig) -> Check:
    from .tracking import resolve_mode

    mode = resolve_mode(str(cfg.logger.wandb.mode))
    later = {"offline": "; upload afterwards with wandb sync (make dashboard DASHBOARD=--sync)",
             "disabled": "; nothing is logged to W&B"}.get(mode, "")
    return Check("wandb", GO, f"mode {mode} (project {cfg.logger.wandb.project}){later}", {"mode": mode})


def command_check(launch: Launch) -> Check:
    sbatch = ""
    if launch.sbatch:
        sbatch = "; sbatch: " + ", ".join(f"{k}={v}" for k, v in launch.sbatch.items() if v is not None)
    return Check("command", GO, launch.command + sbatch, asdict(launch))


# ------------------------------------------------------------------------------------------------------- task
def preflight(cfg: DictConfig, run_dir: Path, task_overrides: list[str], hydra_overrides: list[str],
              launcher: DictConfig | None) -> dict[str, Any]:
    """Run every check, print the table and the verdict, write preflight.json; exit 1 on no-go."""
    from .runtime import pick_device
    from .train import run_plan_of

    settings = cfg.preflight
    launch = launch_of(cfg, task_overrides, hydra_overrides, launcher)
    checks = [config_check(cfg)]
    if checks[0].verdict != NO_GO:
        run_plan = run_plan_of(cfg)
        device = pick_device(str(cfg.train.device), 0)
        checks.append(devices_check(cfg, launch))
        batch, plan = batch_check(cfg, launch, device, run_plan)
        data, loaded = data_check(cfg, run_plan.recipe, int(settings.sample_images))
        if plan is not None and loaded is not None and len(loaded.train) < plan.global_batch:
            batch = Check("batch", NO_GO, f"the training set ({len(loaded.train):,} images) is smaller than one global "
                          f"batch ({plan.global_batch:,}): the run would have no step", batch.values)
        checks += [data, batch]
        if batch.verdict != NO_GO and loaded is not None and checks[1].verdict != NO_GO:
            timed_batch = int(settings.timed_batch or plan.device_batch)
            images_per_s, model, step = timed_steps(cfg, loaded, device, run_plan, timed_batch,
                                                    int(settings.steps))
            checks.append(speed_check(images_per_s, launch, len(loaded.train), run_plan.epochs, timed_batch))
            checks.append(disk_check(checkpoint_bytes(model, step), run_dir))
    checks += [wandb_check(cfg), command_check(launch)]
    verdict = NO_GO if any(c.verdict == NO_GO for c in checks) else GO
    report = {"verdict": verdict, "checks": [asdict(c) for c in checks]}
    print_table(checks, verdict)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "preflight.json", report)
    print(f"wrote {run_dir / 'preflight.json'}", flush=True)
    if verdict == NO_GO:
        sys.exit(1)
    return report


def print_table(checks: list[Check], verdict: str) -> None:
    from tabulate import tabulate

    print(tabulate([[c.name, c.verdict, c.detail] for c in checks], headers=["check", "verdict", "detail"],
                   tablefmt="simple", maxcolwidths=[None, None, 100]))
    failed = [c.name for c in checks if c.verdict == NO_GO]
    print(f"\nverdict: {verdict.upper()}" + (f" ({', '.join(failed)})" if failed else ""), flush=True)
