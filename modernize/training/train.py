"""Training: one readable loop (after nanoGPT's train.py) for every step, recipe, data set and profile.

    python run.py +step=inverted_bottleneck                      # CPU profile, Fashion-MNIST, offline
    torchrun --nproc_per_node=2 run.py +step=gelu profile=gpu    # DistributedDataParallel

`train()` reads top to bottom: set the run up, then per epoch `train_epoch`, `evaluate` and save, then the
summary. Everything a run writes goes to its run directory: config.yaml, metrics.jsonl, last.pt, summary.json.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..data import datasets
from ..data.augment import build_augmentations
from .batch_plan import (AUTO, BatchPlan, check_fits_on_cpu, cpu_step_memory, largest_fitting_on_cpu,
                         measured_device_batch, plan_batch)
from .batches import InMemoryBatches, LoaderBatches, make_batches
from ..design.config import kernel_size_of, model_spec, run_label_of
from .engine import (NonFiniteLoss, TrainStep, compile_model, evaluate, inference_throughput, make_scaler,
                     memory_format_of,
                     prepare_batch)
from ..design.flops import count_gflops, count_params, paper_scale_stats
from .interrupt import SignalWatch, watch_signals
from ..io import atomic_write_json, atomic_write_text, read_json
from .lock import run_lock
from ..design.model import build
from .identity import config_hash, setting_differences
from .proxy import describe, effective_recipe, run_preprocessing, run_spec, scale_model
from .proxy import ema_decay as proxy_ema_decay
from .recipe import make_mixing, make_optimizer, make_scheduler, scaled_lr
from ..design.roadmap import paper_reference
from .runtime import Processes, RunError, barrier, gather, git_commit, is_main_process, setup_runtime
from .state import TrainState, load_checkpoint, save_checkpoint
from .checks import check_config, check_training_device

__all__ = ["RunError", "TrainingDiverged", "check_config", "train"]


class TrainingDiverged(RunError):
    pass


MEASURED_CLASSES = 1000  # the head a device batch is measured with: ImageNet's, the largest a profile trains
MEASURED_STEPS_PER_EPOCH = 1000  # the schedule of a step built only to be measured (its lr barely moves)


@dataclass
class Run:
    """Everything one run trains with, built once by `setup`; the loop reads it and changes only `state`."""

    cfg: DictConfig
    run_dir: Path
    label: str  # the step (or delta combination) this run trains, as the table names it
    config_hash: str
    processes: Processes
    device: torch.device
    plan: RunPlan  # epochs, recipe as trained, global batch and lr (the profile's rules applied)
    batch_plan: BatchPlan  # processes x device batch x accumulation = global batch
    batches: InMemoryBatches | LoaderBatches
    memory_format: torch.memory_format
    augment_train: nn.Module
    augment_eval: nn.Module
    mixing: nn.Module | None
    step: TrainStep  # the model, its optimizer, schedule, scaler and EMA
    state: TrainState
    stats: dict[str, Any]  # params and GFLOPs of the paper-scale model and of the one trained
    description: dict[str, Any]  # what the profile changed (modernize.training.proxy.describe)
    tracker: Any = None  # modernize.training.tracking.Tracker on the main process
    interrupt: SignalWatch | None = None  # the stop signals received (modernize.training.interrupt)

    @property
    def model(self) -> nn.Module:
        return self.step.model

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "last.pt"


# ------------------------------------------------------------------------------------------------ the run
def train(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Train one model in `run_dir`; resume if it holds a checkpoint of the same config; return the summary."""
    check_config(cfg)  # before anything is written into the run directory
    check_training_device(cfg)
    run_dir = Path(run_dir)
    # However the run ends, its W&B run is finished here (as failed if an exception escapes) before the error
    # reaches the caller: a multirun goes on in this process, and its next run must not find this one open.
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(run_lock(run_dir, enabled=is_main_process()))  # one run per run directory
        finished = finished_summary(cfg, run_dir)
        if finished is not None:
            return finished
        interrupt = cleanup.enter_context(watch_signals())  # SIGTERM/SIGINT/SIGUSR*: save, then stop
        run = setup(cfg, run_dir)
        cleanup.callback(run.batches.close)
        run.interrupt = interrupt
        if run.processes.is_main:
            write_config(run)
            run.tracker = cleanup.enter_context(open_tracker(run))
        run.state.start_clock()
        train_images_per_s = []
        for epoch in range(run.state.epoch, run.plan.epochs):
            row = train_epoch(run, epoch)
            row.update(validation_metrics(run))
            train_images_per_s.append(row["train_images_per_s"])
            run.state.history.append(row)
            run.state.epoch, run.state.step_in_epoch = epoch + 1, 0
            save(run)
            log_epoch(run, row)
            if epoch + 1 < run.plan.epochs and interrupt.requested(run.processes, run.device):
                raise interrupt.stop(f"the end of epoch {epoch + 1}", str(run.checkpoint_path), run.tracker)
        return finish(run, train_images_per_s)


def finished_summary(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """The summary of this very config when `run_dir` already holds it finished (a sweep's skip), else None."""
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        return None
    try:
        done = read_json(summary_path)
    except (OSError, ValueError) as e:  # ValueError: invalid JSON (json.JSONDecodeError), bad UTF-8
        raise RunError(f"{summary_path} is unreadable ({type(e).__name__}: {e}); delete it and run the same "
                       f"command again (last.pt resumes the run)") from None
    if not isinstance(done, dict) or not isinstance(done.get("final_top1"), (int, float)):
        raise RunError(f"{summary_path} is not a modernize summary; delete it and run the same command again "
                       f"(last.pt resumes the run)")
    chash = config_hash(cfg)
    if done.get("config_hash") != chash:
        raise RunError(f"{run_dir} already holds a finished run of another config (hash {done.get('config_hash')}, "
                       f"this run {chash}{differences_from(run_dir, cfg)}); to keep both, pass sweep_name=<name> "
                       f"to write this run into another folder, or remove {run_dir} to train this config there")
    if is_main_process():
        print(f"{run_label_of(cfg)} seed {cfg.seed}: already finished in {run_dir} (top-1 {done['final_top1']:.2f}); "
              f"skipping")
        rebuild_metrics(run_dir, chash, run_label_of(cfg))
    return done


def differences_from(run_dir: Path, cfg: DictConfig) -> str:
    """'; that run vs this one: profile.epochs: 1 vs 6' from the config.yaml the folder's run was written with
    ('' without one)."""
    path = run_dir / "config.yaml"
    try:
        differences = setting_differences(OmegaConf.load(path), cfg)
    except Exception:  # noqa: BLE001 -- a missing or unreadable config.yaml: the hashes alone say it
        return ""
    return f"; that run vs this one: {differences}" if differences else ""


def rebuild_metrics(run_dir: Path, chash: str, label: str) -> None:
    """metrics.jsonl again from the checkpoint's history when it is missing or empty (the checkpoint holds it)."""
    metrics, checkpoint = run_dir / "metrics.jsonl", run_dir / "last.pt"
    if checkpoint.exists() and (not metrics.exists() or not metrics.read_text().strip()):
        write_metrics(run_dir, load_checkpoint(checkpoint, chash, label)["history"])
        print(f"rebuilt {metrics} from {checkpoint}", flush=True)


# ------------------------------------------------------------------------------------------------- setup
def setup(cfg: DictConfig, run_dir: Path) -> Run:
    """Device and processes, data, model, optimization and the resumed (or freshly seeded) state."""
    train_cfg, profile = cfg.train, cfg.profile
    processes, device = setup_runtime(train_cfg)
    run_plan = run_plan_of(cfg)
    recipe = run_plan.recipe

    # Same seed on every process for the model (DDP also broadcasts rank 0's weights); per-process seeds for data.
    torch.manual_seed(cfg.seed)
    # timm's transforms draw with Python's random (RandomResizedCrop, erasing) and numpy (RandAugment's ops) where
    # they run in this process (workers=0), so both get the per-process seed torch's augmentation gets below
    random.seed(cfg.seed + processes.rank)
    np.random.seed(cfg.seed + processes.rank)
    plan = batch_plan_of(cfg, processes.count, device, run_plan)
    data = datasets.load_for_run(cfg, recipe)  # folder data sets augment in their loader workers
    batches = make_batches(data, device, run_plan.global_batch, processes, cfg.seed, train_cfg.workers)
    paper_spec = model_spec(cfg)  # derived once: the paper's model, then the one this profile trains
    spec = scale_model(paper_spec, cfg, data.num_classes)
    memory_format = memory_format_of(train_cfg.channels_last)
    model = build(spec).to(device, memory_format=memory_format)
    stats = {**paper_scale_stats(paper_spec), "params_run": count_params(model),
             "gflops_run": count_gflops(model, profile.resolution)}
    augment_train, augment_eval = build_augmentations(recipe, resolution=profile.resolution, mean=data.mean,
                                                      std=data.std, loader_transforms=batches.loader_transforms,
                                                      device=device)
    step = train_step_of(model, run_plan, batches.steps_per_epoch, train_cfg, processes, plan.accumulation_steps)
    state = TrainState(model, step.optimizer, step.scheduler, step.scaler, step.ema)
    label, chash = run_label_of(cfg), config_hash(cfg)
    checkpoint = run_dir / "last.pt"
    if train_cfg.resume and checkpoint.exists():
        state.load_state_dict(load_checkpoint(checkpoint, chash, label, lambda: differences_from(run_dir, cfg)),
                              processes.rank)
        if processes.is_main:
            if state.history:  # the checkpoint's history: also mends an emptied or truncated metrics.jsonl
                write_metrics(run_dir, state.history)
            # where it stopped, counted as the interrupt message and the progress lines count (epochs from 1)
            where = (f"epoch {state.epoch + 1} step {state.step_in_epoch}/{batches.steps_per_epoch}"
                     if state.step_in_epoch else f"the end of epoch {state.epoch}")
            print(f"resuming {label} from {checkpoint} after {where}", flush=True)
    else:
        torch.manual_seed(cfg.seed + processes.rank)  # different augmentations on each process
    return Run(cfg=cfg, run_dir=run_dir, label=label, config_hash=chash, processes=processes, device=device,
               plan=run_plan, batch_plan=plan, batches=batches, memory_format=memory_format,
               augment_train=augment_train, augment_eval=augment_eval,
               mixing=make_mixing(recipe, data.num_classes), step=step, state=state, stats=stats,
               description=describe(cfg, spec))


def step_to_measure(cfg: DictConfig, classes: int, device: torch.device, run_plan: RunPlan | None = None) -> TrainStep:
    """The run's training step (train_step_of) around a new model of the run's size (the profile's scaling,
    `classes` outputs) on `device`, in the run's memory format: what `runs_at_once: auto`, the device batch on CUDA
    and task=preflight measure, built as setup() builds a run's."""
    model = build(run_spec(cfg, classes)).to(device, memory_format=memory_format_of(cfg.train.channels_last))
    return train_step_of(model, run_plan or run_plan_of(cfg), MEASURED_STEPS_PER_EPOCH, cfg.train)


def batch_plan_of(cfg: DictConfig, process_count: int, device: torch.device,
                  run_plan: RunPlan) -> BatchPlan:
    """The batch arithmetic of a run of `process_count` processes (modernize.training.batch_plan): with
    train.accumulation_steps=auto and no train.device_batch on CUDA, the largest device batch that fits, measured on
    a fresh copy of the run's model and step (the smallest over the processes, so that every process takes the same
    steps; task=preflight measures it in its one process)."""
    global_batch, lr = run_plan.global_batch, run_plan.lr
    accumulation, device_batch = cfg.train.accumulation_steps, OmegaConf.select(cfg, "train.device_batch")
    largest = None
    memory, available = None, datasets.available_bytes("cpu") if device.type == "cpu" else None
    if available is not None:  # the CPU: the step's memory estimated (batch_plan.cpu_step_memory) and checked
        with torch.random.fork_rng(devices=[]):  # the run's model is drawn from the seed after this one
            model = build(run_spec(cfg, MEASURED_CLASSES)).to(memory_format=memory_format_of(cfg.train.channels_last))
            memory = cpu_step_memory(model, cfg.profile.resolution, MEASURED_CLASSES,
                                     memory_format_of(cfg.train.channels_last))
        del model
        if accumulation == AUTO and device_batch is None:
            largest = largest_fitting_on_cpu(memory, available)
    if accumulation == AUTO and device_batch is None and device.type == "cuda":
        def largest(per_process: int) -> int:
            fitting = torch.tensor(measured_device_batch(
                lambda: step_to_measure(cfg, MEASURED_CLASSES, device, run_plan), cfg.profile.resolution,
                MEASURED_CLASSES, device, per_process, cfg.train.channels_last), device=device)
            if dist.is_initialized():
                dist.all_reduce(fitting, op=dist.ReduceOp.MIN)
            return int(fitting)
    plan = plan_batch(global_batch, process_count, lr, accumulation=accumulation, device_batch=device_batch,
                      has_batch_norm=model_spec(cfg).uses_batch_norm, largest_fitting=largest)
    if memory is not None:
        check_fits_on_cpu(plan, memory, available, f"{run_label_of(cfg)} at {cfg.profile.resolution} px on the CPU")
    return plan


@dataclass(frozen=True)
class RunPlan:
    """What a run trains for, after its profile's rules (modernize.training.proxy): the recipe as trained, its
    epochs, the global batch, the lr the recipe's scaling gives that batch, and the profile whose EMA rule applies.
    How each process meets the global batch is the BatchPlan (batch_plan_of)."""

    epochs: int
    recipe: DictConfig
    global_batch: int
    lr: float
    profile: DictConfig

    def ema_decay(self, steps_per_epoch: int) -> float | None:
        """The EMA decay of a run of this plan (None: no EMA): the profile's rule applied to the recipe's decay."""
        return proxy_ema_decay(self.profile, self.recipe.get("ema_decay"), self.epochs * steps_per_epoch)


def run_plan_of(cfg: DictConfig) -> RunPlan:
    """The RunPlan of a run's config."""
    epochs, recipe = effective_recipe(cfg)
    recipe = OmegaConf.create(recipe)
    global_batch = int(cfg.profile.batch_size or recipe.batch_size)
    return RunPlan(epochs=epochs, recipe=recipe, global_batch=global_batch,
                   lr=scaled_lr(recipe.lr, global_batch, recipe.lr_batch, cfg.profile.lr_scaling), profile=cfg.profile)


def train_step_of(model: nn.Module, plan: RunPlan, steps_per_epoch: int, train_cfg: DictConfig,
                  processes: Processes | None = None, accumulation_steps: int = 1) -> TrainStep:
    """The one training-step builder: the plan's optimizer, lr schedule over its epochs, loss and EMA (the profile's
    rule applied to the recipe's decay: modernize.training.proxy.ema_decay) around `model` (already on its device),
    compiled and/or DDP-wrapped as `train_cfg` asks. setup() builds a run's step here, and so do what measures one
    (step_to_measure: `runs_at_once: auto`, the device batch on CUDA, task=preflight) and `make bench`, so what is
    measured is what trains. The EMA follows every parameter and buffer (BatchNorm's statistics too) after each
    optimizer step, as timm's ModelEma in the official code (engine.py: model_ema.update(model) after
    optimizer.step())."""
    processes = processes or Processes()
    recipe, ema_decay = plan.recipe, plan.ema_decay(steps_per_epoch)
    device = next(model.parameters()).device
    optimizer = make_optimizer(model, recipe, plan.lr, device)
    ema = None
    if ema_decay:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
    forward: nn.Module = compile_model(model) if train_cfg.compile else model
    if processes.distributed:
        forward = nn.parallel.DistributedDataParallel(forward, device_ids=[device.index] if device.type == "cuda"
                                                      else None)
    return TrainStep(forward=forward, model=model,
                     criterion=nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing), optimizer=optimizer,
                     scaler=make_scaler(device.type, train_cfg.precision), precision=train_cfg.precision,
                     scheduler=make_scheduler(optimizer, recipe, plan.epochs, steps_per_epoch), ema=ema,
                     ema_decay=ema_decay if ema is not None else None, grad_clip=train_cfg.grad_clip,
                     accumulation_steps=accumulation_steps)


def write_config(run: Run) -> None:
    """config.yaml: the run's whole config, resolved; what identifies the run when its folder is read back
    (modernize.training.runs) and what `task=eval` and export rebuild the model from."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.run_dir / "config.yaml", OmegaConf.to_yaml(run.cfg, resolve=True))


def open_tracker(run: Run):
    """The run's W&B run (resumed into the same W&B run after a restart): job type "train", its
    roadmap position as config (step_index, step_label: modernize.training.wandb_names), epoch-wise keys plotted against
    the epoch, and with logger.wandb.log_weights the final model (and EMA) weights as a "model" artifact."""
    from . import wandb_names as names
    from ..io import atomic_write
    from ..design.roadmap import sort_label, step_index
    from .tracking import Tracker

    cfg, profile, s = run.cfg, run.cfg.profile, run.stats
    tracker = Tracker(
        mode=cfg.logger.wandb.mode, project=cfg.logger.wandb.project, entity=cfg.logger.wandb.entity,
        group=cfg.sweep_name, name=f"{run.label}-seed{cfg.seed}", job_type=names.JOB_TRAIN,
        tags=[run.label, profile.name, cfg.data.name, run.plan.recipe.name, *cfg.logger.wandb.tags],
        config={**OmegaConf.to_container(cfg, resolve=True), **s, "config_hash": run.config_hash,
                names.LABEL: run.label, names.STEP_INDEX: step_index(run.label),
                names.STEP_LABEL: sort_label(run.label)},
        summary_names=names.SUMMARY_NAMES, run_dir=run.run_dir, run_id=run.state.wandb_id)
    run.state.wandb_id = tracker.run_id
    tracker.define_step_metric(names.EPOCH, names.EPOCH_KEYS)
    if OmegaConf.select(cfg, "logger.wandb.log_weights", default=False):
        def log_weights() -> None:  # the weights only: no optimizer, scheduler or RNG state (that is last.pt)
            path = run.run_dir / "weights.pt"
            ema = run.step.ema.module.state_dict() if run.step.ema is not None else None
            weights = {"model": run.model.state_dict(), "ema": ema, "label": run.label,
                       "config_hash": run.config_hash}
            atomic_write(path, lambda tmp: torch.save(weights, tmp))
            tracker.artifact(names.artifact_name(cfg.sweep_name, run.label, f"seed{cfg.seed}"), "model", [path],
                             metadata={"label": run.label, "seed": cfg.seed, "config_hash": run.config_hash,
                                       "epochs": run.plan.epochs, "ema": ema is not None})
        tracker.at_finish(log_weights)
    print(f"{run.label}: {s['params']:,} params, {s['gflops_224']:.2f} GFLOPs at 224 (paper model); trained at "
          f"width x{profile.width_multiplier}, {profile.resolution}px: {s['params_run']:,} params, "
          f"{s['gflops_run'] * 1e3:.1f} MFLOPs; {run.plan.epochs} epochs x {run.batches.steps_per_epoch} steps, "
          f"batch {run.plan.global_batch}, lr {run.plan.lr:.3g}, recipe {run.plan.recipe.name}"
          f"{f', EMA {run.step.ema_decay:.6g}' if run.step.ema is not None else ''}, data {cfg.data.name}, "
          f"device {run.device}, "
          f"{run.processes.count} process(es)\n{run.batch_plan.line()}", flush=True)
    return tracker


# ------------------------------------------------------------------------------------------------- epoch
def train_epoch(run: Run, epoch: int) -> dict[str, float]:
    """One epoch of optimizer steps (from mid-epoch when resumed); its training loss and speed."""
    state, train_cfg, processes = run.state, run.cfg.train, run.processes
    run.model.train()
    start_step, steps = state.step_in_epoch, run.batches.steps_per_epoch
    progress = Progress(steps, start_step, f"epoch {epoch + 1}/{run.plan.epochs}", train_cfg.log_every_steps,
                        processes.is_main)
    loss_sum = torch.tensor(state.epoch_loss["loss_sum"], device=run.device, dtype=torch.float64)
    seen = seen_at_start = state.epoch_loss["seen"]
    state.epoch_loss = {"loss_sum": 0.0, "seen": 0}
    epoch_start = time.perf_counter()
    for i, (images, labels) in enumerate(run.batches.train_batches(epoch, start_step), start=start_step):
        inputs, targets = prepare_batch(images, labels, run.augment_train, run.mixing, run.memory_format,
                                        run.batch_plan.accumulation_steps)
        try:
            loss = run.step(inputs, targets)
        except NonFiniteLoss as e:
            saved = (f"The last good checkpoint {run.checkpoint_path} is kept" if run.checkpoint_path.exists()
                     else "No checkpoint had been saved yet")
            raise TrainingDiverged(
                f"{run.label}: {e} at epoch {epoch + 1}, step {i + 1} (lr {run.step.scheduler.get_last_lr()[0]:.3g}); "
                f"stopped. {saved}; try a lower recipe.lr, train.precision=fp32 or train.grad_clip=1.0") from None
        loss_sum += loss.double() * len(labels)
        seen += len(labels)
        progress.update(loss=loss.item(), lr=run.step.scheduler.get_last_lr()[0],
                        img_s=(seen - seen_at_start) * processes.count / max(time.perf_counter() - epoch_start, 1e-9))
        every = train_cfg.checkpoint_every_steps
        stop = run.interrupt is not None and run.interrupt.requested(processes, run.device)
        if i + 1 < steps and (stop or (every and (i + 1) % every == 0)):
            save_mid_epoch(run, i + 1, loss_sum, seen)
            if stop:
                progress.close()
                raise run.interrupt.stop(f"epoch {epoch + 1} step {i + 1}/{steps}", str(run.checkpoint_path),
                                         run.tracker)
    progress.close()
    epoch_time = time.perf_counter() - epoch_start
    if processes.distributed:
        dist.all_reduce(loss_sum)
    return {"epoch": epoch + 1, "train_loss": loss_sum.item() / max(seen * processes.count, 1),
            "lr": run.step.scheduler.get_last_lr()[0],
            "train_images_per_s": (seen - seen_at_start) * processes.count / epoch_time, "epoch_time_s": epoch_time}


def validation_metrics(run: Run) -> dict[str, float]:
    """Top-1/top-5 and loss on the validation set, of the model and (when the recipe has one) of its EMA."""
    distributed = run.processes.distributed
    val = evaluate(run.model, run.batches.val_batches(), run.augment_eval, run.step.precision, distributed)
    row = {"val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"]}
    if run.step.ema is not None and run.cfg.train.ema_eval:
        ema = evaluate(run.step.ema.module, run.batches.val_batches(), run.augment_eval, run.step.precision,
                       distributed)
        row.update(ema_val_top1=ema["top1"], ema_val_top5=ema["top5"])
    return row


def save(run: Run) -> None:
    """last.pt from the main process, with every process's RNG stream and running loss (a collective: all
    processes call it)."""
    per_process = gather(run.processes, run.state.local_state())
    if run.processes.is_main:
        save_checkpoint(run.checkpoint_path, run.state, per_process, run.config_hash, run.label)
    barrier(run.processes)


def save_mid_epoch(run: Run, steps_done: int, loss_sum: torch.Tensor, seen: int) -> None:
    """last.pt after `steps_done` optimizer steps of the epoch, with the epoch's running loss so far."""
    state = run.state
    state.step_in_epoch, state.epoch_loss = steps_done, {"loss_sum": loss_sum.item(), "seen": seen}
    save(run)
    state.epoch_loss = {"loss_sum": 0.0, "seen": 0}


def write_metrics(run_dir: Path, history: list[dict[str, float]]) -> None:
    atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))


def log_epoch(run: Run, row: dict[str, float]) -> None:
    if not run.processes.is_main:
        return
    write_metrics(run.run_dir, run.state.history)
    run.tracker.log({f"train/{k[6:]}" if k.startswith("train_") else k.replace("val_", "val/"): v
                     for k, v in row.items() if k != "epoch"} | {"epoch": row["epoch"]}, step=row["epoch"])
    print(f"{run.label} epoch {row['epoch']}/{run.plan.epochs}: train loss {row['train_loss']:.4f}, val top-1 "
          f"{row['val_top1']:.2f}, top-5 {row['val_top5']:.2f}, {row['train_images_per_s']:.0f} img/s", flush=True)


# ----------------------------------------------------------------------------------------------- summary
def finish(run: Run, train_images_per_s: list[float]) -> dict[str, Any]:
    """summary.json: the last and best accuracies, the model's size and speed, what was trained and how."""
    cfg, train_cfg, history = run.cfg, run.cfg.train, run.state.history
    infer = inference_throughput(run.model, cfg.profile.resolution, train_cfg.throughput_batch, train_cfg.precision,
                                 run.memory_format)
    paper = paper_reference(run.label) or {}
    final = history[-1]
    summary = {
        "label": run.label, "seed": cfg.seed, "kernel_size": kernel_size_of(cfg), "profile": cfg.profile.name,
        "data": cfg.data.name, "recipe": run.plan.recipe.name,
        "final_top1": final["val_top1"], "final_top5": final["val_top5"],
        "best_top1": max(h["val_top1"] for h in history), "best_top5": max(h["val_top5"] for h in history),
        **run.stats,
        "train_images_per_s": sorted(train_images_per_s)[len(train_images_per_s) // 2] if train_images_per_s
        else None,
        "infer_images_per_s": infer, "wall_time_s": run.state.elapsed_s,
        "epochs": run.plan.epochs, "global_batch": run.plan.global_batch, "lr": run.plan.lr,
        "world_size": run.processes.count,
        "accumulation_steps": run.batch_plan.accumulation_steps, "micro_batch": run.batch_plan.device_batch,
        "batch_norm_batch": run.batch_plan.batch_norm_batch, "batch_plan": run.batch_plan.line(),
        "ema_decay": run.step.ema_decay,
        "device": str(run.device), "precision": train_cfg.precision, "scaled": run.description,
        "paper_top1": paper.get("top1"), "paper_gflops": paper.get("gflops"),
        "git_commit": git_commit(), "config_hash": run.config_hash,
        # what the model expects of an image, read by task=eval, the export's card and hubconf (design/preprocessing)
        "preprocessing": run_preprocessing(cfg).as_dict(),
    }
    if "ema_val_top1" in final:  # docs/recipe.md: the EMA's top-1 is what the paper's ConvNeXt-T 82.1 reports
        summary.update(ema_final_top1=final["ema_val_top1"], ema_final_top5=final["ema_val_top5"],
                       ema_best_top1=max(h["ema_val_top1"] for h in history))
    if run.processes.is_main:
        atomic_write_json(run.run_dir / "summary.json", summary)
        run.tracker.summary({k: v for k, v in summary.items() if not isinstance(v, dict)})
        run.tracker.finish()
        print(f"{run.label} seed {cfg.seed}: final top-1 {summary['final_top1']:.2f} "
              f"(best {summary['best_top1']:.2f}), top-5 {summary['final_top5']:.2f}, "
              f"{summary['wall_time_s']:.0f} s", flush=True)
    barrier(run.processes)
    return summary


# ------------------------------------------------------------------------------------------------ output
class Progress:
    """tqdm bar on a terminal; plain periodic lines otherwise (logs, SLURM, CI)."""

    def __init__(self, total: int, initial: int, desc: str, every: int, enabled: bool):
        self.enabled, self.every, self.desc, self.total, self.n = enabled, max(every, 1), desc, total, initial
        self.bar = None
        if enabled and sys.stdout.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=False)

    def update(self, **fields: float) -> None:
        self.n += 1
        if not self.enabled:
            return
        text = " ".join(f"{k}={v:.4g}" for k, v in fields.items())
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(text, refresh=False)
        elif self.n % self.every == 0 or self.n == self.total:
            print(f"{self.desc} {self.n}/{self.total} {text}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
