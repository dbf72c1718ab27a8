"""Training: one readable loop (after nanoGPT's train.py) for every step, recipe, data set and profile.

    python run.py +step=inverted_bottleneck                      # CPU profile, Fashion-MNIST, offline
    torchrun --nproc_per_node=2 run.py +step=gelu profile=gpu    # DistributedDataParallel

Everything a run writes goes to its run directory: config.yaml, metrics.jsonl, last.pt, summary.json.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DistributedSampler
from torchvision.transforms import v2

from . import datasets as data_lib
from .augment import build_augmentations
from .config import config_hash, model_spec, run_spec, step_label
from .flops import count_gflops, count_params
from .io import atomic_write, atomic_write_json, atomic_write_text, read_json
from .model import build
from .proxy import check_rules, describe, effective_recipe
from .roadmap import paper_step

RECIPES = ("original", "modern")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine")
PRECISIONS = ("fp32", "bf16", "fp16")
LR_SCALING = ("linear", "sqrt")
CHECKPOINT_VERSION = 1


class RunError(RuntimeError):
    """A run cannot start or go on; the message says what was wrong and what to do."""


class TrainingDiverged(RunError):
    pass


# ----------------------------------------------------------------------------------------------- checks
def validate(cfg: DictConfig) -> None:
    """Every bad value the user can type, caught before any data is read or anything is written."""
    r, p, t = cfg.recipe, cfg.profile, cfg.train

    def positive(name: str, value: Any, allow_none: bool = False, integer: bool = False) -> None:
        if value is None and allow_none:
            return
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        if integer:
            ok = ok and isinstance(value, int)
        if not ok:
            kind = "a positive integer" if integer else "a positive number"
            raise RunError(f"{name} must be {kind}{' or null' if allow_none else ''}, got {value!r}")

    if r.name not in RECIPES:
        raise RunError(f"recipe.name must be one of {', '.join(RECIPES)}, got {r.name!r}")
    if r.optimizer not in OPTIMIZERS:
        raise RunError(f"recipe.optimizer must be one of {', '.join(OPTIMIZERS)}, got {r.optimizer!r}")
    if r.schedule not in SCHEDULES:
        raise RunError(f"recipe.schedule must be one of {', '.join(SCHEDULES)}, got {r.schedule!r}")
    positive("recipe.lr", r.lr)
    positive("recipe.lr_batch", r.lr_batch, integer=True)
    positive("recipe.epochs", r.epochs, integer=True)
    positive("recipe.batch_size", r.batch_size, integer=True)
    if r.weight_decay < 0 or r.warmup_epochs < 0 or r.label_smoothing < 0 or r.mixup < 0 or r.cutmix < 0:
        raise RunError("recipe.weight_decay, warmup_epochs, label_smoothing, mixup and cutmix must be >= 0")
    if not 0 <= r.random_erasing <= 1:
        raise RunError(f"recipe.random_erasing is a probability in [0, 1], got {r.random_erasing!r}")
    if r.ema_decay is not None and not 0 < r.ema_decay < 1:
        raise RunError(f"recipe.ema_decay must be in (0, 1) or null, got {r.ema_decay!r}")
    positive("profile.epochs", p.epochs, allow_none=True, integer=True)
    positive("profile.batch_size", p.batch_size, allow_none=True, integer=True)
    positive("profile.resolution", p.resolution, integer=True)
    positive("profile.width_multiplier", p.width_multiplier)
    positive("profile.train_subset", p.train_subset, allow_none=True, integer=True)
    positive("profile.val_subset", p.val_subset, allow_none=True, integer=True)
    if p.lr_scaling not in LR_SCALING:
        raise RunError(f"profile.lr_scaling must be one of {', '.join(LR_SCALING)}, got {p.lr_scaling!r}")
    if t.precision not in PRECISIONS:
        raise RunError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {t.precision!r}")
    if cfg.data.name not in data_lib.DATASET_NAMES:
        raise RunError(f"data.name must be one of {', '.join(data_lib.DATASET_NAMES)}, got {cfg.data.name!r}")
    root = OmegaConf.select(cfg, "data.root", throw_on_missing=False, default=None)
    if OmegaConf.is_missing(cfg.data, "root"):
        raise RunError(f"data={cfg.data.name} needs data.root=<folder> (train/ and val/ class folders)")
    if root is not None and not Path(str(root)).expanduser().is_dir():
        raise RunError(f"data.root={root} does not exist or is not a folder")
    try:
        check_rules(p)
        model_spec(cfg)
        run_spec(cfg, num_classes=1)  # the profile's changes are valid too (class count comes with the data)
    except ValueError as e:
        raise RunError(str(e)) from None


# --------------------------------------------------------------------------------------------- plumbing
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_kind: str) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; under SLURM (hydra/launcher=slurm) submitit derives them from
    the job's tasks. gloo on CPU, nccl on CUDA."""
    if "WORLD_SIZE" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"train.device={name} but CUDA is not available; use train.device=cpu or auto")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------- recipe -> torch
def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict]:
    """No weight decay on 1-D tensors (norm weights, biases, layer scale), as the official ConvNeXt code."""
    if decay_norm_and_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, r: DictConfig, lr: float, device: torch.device) -> torch.optim.Optimizer:
    groups = param_groups(model, r.weight_decay, r.decay_norm_and_bias)
    if r.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=r.momentum, nesterov=r.nesterov)
    # fused AdamW is the fastest on CUDA; foreach elsewhere
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(r.betas), fused=fused, foreach=None if fused else True)


def make_scheduler(optimizer: torch.optim.Optimizer, r: DictConfig, epochs: int, steps_per_epoch: int):
    """Per-step schedule; warmup and milestones keep their fraction of the recipe's epochs (shape of the run)."""
    total = epochs * steps_per_epoch
    if r.schedule == "step":
        milestones = [round(m / r.epochs * total) for m in r.milestones]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=r.gamma)
    warmup = round(r.warmup_epochs / r.epochs * total)
    base_lr = optimizer.param_groups[0]["lr"]
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total - warmup, 1),
                                                        eta_min=min(r.min_lr, base_lr))
    if warmup == 0:
        return cosine
    linear = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1e-3, end_factor=1.0, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [linear, cosine], milestones=[warmup])


def make_mixing(r: DictConfig, num_classes: int) -> nn.Module | None:
    """Mixup and CutMix (one of the two per batch, as timm's switch_prob 0.5), torchvision v2."""
    ops = []
    if r.mixup > 0:
        ops.append(v2.MixUp(alpha=r.mixup, num_classes=num_classes))
    if r.cutmix > 0:
        ops.append(v2.CutMix(alpha=r.cutmix, num_classes=num_classes))
    if not ops:
        return None
    return ops[0] if len(ops) == 1 else v2.RandomChoice(ops)


def scaled_lr(lr: float, batch: int, reference_batch: int, rule: str) -> float:
    """The recipe's lr at another global batch.

    "linear" is the paper's rule (appendix A.1, after Goyal et al. 2017) and right near the recipe's batch.
    Small-batch proxies use "sqrt", the scaling rule for adaptive optimizers (Malladi et al., NeurIPS 2022):
    linear scaling takes AdamW from 4e-3 at 4096 down to 1.25e-4 at 128, too small to learn anything in a few
    epochs, while sqrt gives 7e-4; for SGD at 128 it gives 0.07 instead of 0.05.
    """
    ratio = batch / reference_batch
    return lr * (ratio if rule == "linear" else math.sqrt(ratio))


# ---------------------------------------------------------------------------------------------- checkpoint
def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path, expected_hash: str, step: str) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any unpickling failure means the file cannot be trusted
        raise RunError(f"checkpoint {path} is corrupt or not a modernize checkpoint ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else ''}); delete it to start over, or use another "
                       f"run directory") from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise RunError(
            f"checkpoint {path} is not a modernize v{CHECKPOINT_VERSION} checkpoint; delete it to start over")
    if state["config_hash"] != expected_hash:
        raise RunError(f"checkpoint {path} belongs to another config (step {state['step_name']}, config hash "
                       f"{state['config_hash']}; this run: step {step}, hash {expected_hash}). Use another run "
                       f"directory (hydra.run.dir=... or sweep_name=...) or delete the checkpoint.")
    return state


# ------------------------------------------------------------------------------------------------ metrics
@torch.no_grad()
def evaluate(model: nn.Module, batches, augment: nn.Module, device: torch.device, world: Dist,
             autocast) -> dict[str, float]:
    model.eval()
    stats = torch.zeros(4, device=device, dtype=torch.float64)  # loss sum, top-1 hits, top-5 hits, count
    for images, labels in batches:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast():
            logits = model(augment(images)).float()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hits = top.eq(labels[:, None])
        stats += torch.stack([nn.functional.cross_entropy(logits, labels, reduction="sum").double(),
                              hits[:, 0].sum().double(), hits.any(dim=1).sum().double(),
                              torch.tensor(float(len(labels)), device=device, dtype=torch.float64)])
    if world.world > 1:
        dist.all_reduce(stats)
    loss, top1, top5, n = stats.tolist()
    return {"loss": loss / n, "top1": 100 * top1 / n, "top5": 100 * top5 / n}


@torch.no_grad()
def inference_throughput(model: nn.Module, resolution: int, batch: int, device: torch.device,
                         channels_last: bool, autocast, repeats: int = 5) -> float:
    """Images/s of the forward pass in eval mode (the paper's Table 1 measure), median of `repeats`."""
    model.eval()
    x = torch.randn(batch, 3, resolution, resolution, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with autocast():
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:  # two warm-up passes
            times.append(time.perf_counter() - start)
    return batch / sorted(times)[len(times) // 2]


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


# ------------------------------------------------------------------------------------------------ the run
def train(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Train one model in `run_dir`; resume if it holds a checkpoint of the same config; return the summary."""
    # However the run ends, its W&B run is finished here (as failed if an exception escapes) before the error
    # reaches the caller: a multirun goes on in this process, and its next run must not find this one open.
    with contextlib.ExitStack() as cleanup:
        return _train(cfg, run_dir, cleanup)


def _train(cfg: DictConfig, run_dir: str | Path, cleanup: contextlib.ExitStack) -> dict[str, Any]:
    """train(), with `cleanup` closing what the run opens (the W&B tracker) when it ends."""
    validate(cfg)
    run_dir = Path(run_dir)
    step = step_label(cfg)
    chash = config_hash(cfg)
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        done = read_json(summary_path)
        if done.get("config_hash") == chash:
            if int(os.environ.get("RANK", "0")) == 0:
                print(f"{step} seed {cfg.seed}: already finished in {run_dir} (top-1 {done['final_top1']:.2f}); "
                      f"skipping")
            return done
        raise RunError(f"{run_dir} already holds a finished run of another config (hash {done.get('config_hash')}, "
                       f"this run {chash}); use another run directory")

    t = cfg.train
    wants_cuda = (t.device == "auto" and torch.cuda.is_available()) or str(t.device).startswith("cuda")
    device_kind = "cuda" if wants_cuda else "cpu"
    world = setup_distributed(device_kind)
    device = pick_device(t.device, world.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if t.threads:
        torch.set_num_threads(int(t.threads))
    if t.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    p = cfg.profile
    # the recipe as this profile trains it: epochs, regularization and crops scaled by modernize.proxy's rules
    epochs, r = effective_recipe(cfg)
    r = OmegaConf.create(r)
    global_batch = int(p.batch_size or r.batch_size)
    if global_batch % world.world:
        raise RunError(f"the global batch {global_batch} must divide evenly over {world.world} processes")
    local_batch = global_batch // world.world
    lr = scaled_lr(r.lr, global_batch, r.lr_batch, p.lr_scaling)

    # Same seed on every rank for the model (DDP also broadcasts rank 0's weights); per-rank seeds for data.
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    data = data_lib.load_data(cfg.data.name, cfg.data.root, resolution=p.resolution, train_subset=p.train_subset,
                              val_subset=p.val_subset, seed=cfg.seed,
                              synthetic_size=OmegaConf.select(cfg, "data.size", default=512),
                              synthetic_classes=OmegaConf.select(cfg, "data.classes", default=10))
    in_memory = isinstance(data.train, data_lib.TensorDataset)
    if in_memory:
        train_set, val_set = data.train.to(device), data.val.to(device)
        steps_per_epoch = len(train_set) // global_batch
    else:
        train_loader = data_lib.make_loader(data.train, local_batch, shuffle=True, workers=t.workers,
                                            distributed=world.world > 1, seed=cfg.seed, drop_last=True)
        val_loader = data_lib.make_loader(data.val, local_batch, shuffle=False, workers=t.workers,
                                          distributed=world.world > 1, seed=cfg.seed, drop_last=False)
        steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise RunError(f"the training set ({len(data.train)} images) is smaller than one global batch ({global_batch})")

    spec = run_spec(cfg, data.num_classes)
    model = build(spec).to(device)
    memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    paper_model = build(model_spec(cfg))  # the step at paper scale, for the numbers comparable to the paper's
    paper_model_stats = {"params": count_params(paper_model), "gflops_224": count_gflops(paper_model, 224)}
    del paper_model
    run_stats = {"params_run": count_params(model), "gflops_run": count_gflops(model, p.resolution)}

    # folder data sets are cropped and flipped by their DataLoader workers; in-memory ones by augment_train, batched
    augment_train, augment_eval = build_augmentations(r, resolution=p.resolution, mean=data.mean, std=data.std,
                                                      loader_crops=not in_memory, device=device)
    mixing = make_mixing(r, data.num_classes)
    criterion = nn.CrossEntropyLoss(label_smoothing=r.label_smoothing)

    optimizer = make_optimizer(model, r, lr, device)
    scheduler = make_scheduler(optimizer, r, epochs, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=t.precision == "fp16")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[t.precision]

    def autocast():
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=dtype)

    ema = None
    if r.ema_decay:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(r.ema_decay), use_buffers=True)
    train_model: nn.Module = model
    if t.compile:
        train_model = torch.compile(model)
    if world.world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None)

    # ------------------------------------------------------------------ resume
    ckpt_path = run_dir / "last.pt"
    start_epoch, start_step, history, wandb_id, elapsed_before = 0, 0, [], None, 0.0
    partial = {"loss_sum": 0.0, "seen": 0}  # the running train loss of an epoch cut by a mid-epoch checkpoint
    if t.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, chash, step)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        start_epoch, start_step = state["epoch"], state["step_in_epoch"]
        history, wandb_id, elapsed_before = state["history"], state.get("wandb_id"), state["elapsed_s"]
        partial = state["partial"]
        set_rng_state(state["rng"][world.rank] if world.rank < len(state["rng"]) else state["rng"][0])
        if world.main:
            print(f"resuming {step} from {ckpt_path} at epoch {start_epoch} step {start_step}", flush=True)
    else:
        torch.manual_seed(cfg.seed + world.rank)  # different augmentations on each rank

    tracker = None
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        from .tracking import Tracker
        tracker = cleanup.enter_context(Tracker(
            mode=cfg.logger.wandb.mode, project=cfg.logger.wandb.project, entity=cfg.logger.wandb.entity,
            group=cfg.sweep_name, name=f"{step}-seed{cfg.seed}",
            tags=[step, p.name, cfg.data.name, r.name, *cfg.logger.wandb.tags],
            config={**OmegaConf.to_container(cfg, resolve=True), **paper_model_stats, **run_stats,
                    "config_hash": chash},
            run_dir=run_dir, run_id=wandb_id))
        print(f"{step}: {paper_model_stats['params']:,} params, {paper_model_stats['gflops_224']:.2f} GFLOPs at 224 "
              f"(paper model); trained at width x{p.width_multiplier}, {p.resolution}px: "
              f"{run_stats['params_run']:,} params, {run_stats['gflops_run'] * 1e3:.1f} MFLOPs; {epochs} epochs x "
              f"{steps_per_epoch} steps, batch {global_batch}, lr {lr:.3g}, recipe {r.name}, data {cfg.data.name}, "
              f"device {device}, {world.world} process(es)", flush=True)

    def checkpoint(epoch: int, step_in_epoch: int, elapsed: float, loss_sum: float = 0.0, seen: int = 0) -> None:
        rngs = [rng_state()]
        if world.world > 1:
            gathered: list[Any] = [None] * world.world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if world.main:
            save_checkpoint(ckpt_path, {
                "version": CHECKPOINT_VERSION, "config_hash": chash, "step_name": step,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "epoch": epoch, "step_in_epoch": step_in_epoch, "history": history, "rng": rngs,
                "wandb_id": tracker.run_id if tracker else None, "elapsed_s": elapsed,
                "partial": {"loss_sum": loss_sum, "seen": seen}})
        if world.world > 1:
            dist.barrier()

    def val_batches():
        if not in_memory:
            return val_loader
        n = len(val_set)
        shard = range(world.rank * local_batch, n, local_batch * world.world)
        return ((val_set.images[i:i + local_batch], val_set.labels[i:i + local_batch]) for i in shard)

    sampler = DistributedSampler(range(len(train_set)), num_replicas=world.world, rank=world.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True) if in_memory else None
    run_start = time.perf_counter()
    train_images_per_s = []
    for epoch in range(start_epoch, epochs):
        model.train()
        if in_memory:
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler), device=device)
            batches = ((train_set.images[order[i * local_batch:(i + 1) * local_batch]],
                        train_set.labels[order[i * local_batch:(i + 1) * local_batch]])
                       for i in range(start_step, steps_per_epoch))
        else:
            if world.world > 1:
                train_loader.sampler.set_epoch(epoch)
            batches = iter(train_loader)
            for _ in range(start_step):  # a mid-epoch resume skips what the checkpoint already saw
                next(batches)
        progress = Progress(steps_per_epoch, start_step, f"epoch {epoch + 1}/{epochs}", t.log_every_steps, world.main)
        loss_sum = torch.tensor(partial["loss_sum"], device=device, dtype=torch.float64)
        seen, epoch_start = partial["seen"], time.perf_counter()
        seen_at_start = seen
        partial = {"loss_sum": 0.0, "seen": 0}
        for i, (images, labels) in enumerate(batches, start=start_step):
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            inputs = augment_train(images).contiguous(memory_format=memory_format)
            targets = labels
            if mixing is not None:
                inputs, targets = mixing(inputs, labels)
            with autocast():
                loss = criterion(train_model(inputs), targets)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"{step}: the loss became {loss.item()} at epoch {epoch + 1}, step {i + 1} (lr "
                    f"{scheduler.get_last_lr()[0]:.3g}); stopped. The last good checkpoint ({ckpt_path}) is kept; "
                    f"try a lower recipe.lr, train.precision=fp32 or train.grad_clip=1.0")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if t.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.detach().double() * len(labels)
            seen += len(labels)
            progress.update(loss=loss.item(), lr=scheduler.get_last_lr()[0],
                            img_s=(seen - seen_at_start) * world.world / max(time.perf_counter() - epoch_start, 1e-9))
            if t.checkpoint_every_steps and (i + 1) % t.checkpoint_every_steps == 0 and i + 1 < steps_per_epoch:
                checkpoint(epoch, i + 1, elapsed_before + time.perf_counter() - run_start, loss_sum.item(), seen)
        progress.close()
        epoch_time = time.perf_counter() - epoch_start
        start_step = 0
        if world.world > 1:
            dist.all_reduce(loss_sum)
        images_per_s = (seen - seen_at_start) * world.world / epoch_time
        train_images_per_s.append(images_per_s)
        val = evaluate(model, val_batches(), augment_eval, device, world, autocast)
        row = {"epoch": epoch + 1, "train_loss": loss_sum.item() / max(seen * world.world, 1),
               "lr": scheduler.get_last_lr()[0], "val_loss": val["loss"], "val_top1": val["top1"],
               "val_top5": val["top5"], "train_images_per_s": images_per_s, "epoch_time_s": epoch_time}
        if ema is not None and t.ema_eval:
            ema_val = evaluate(ema.module, val_batches(), augment_eval, device,
                               world, autocast)
            row.update(ema_val_top1=ema_val["top1"], ema_val_top5=ema_val["top5"])
        history.append(row)
        checkpoint(epoch + 1, 0, elapsed_before + time.perf_counter() - run_start)
        if world.main:
            atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
            tracker.log({f"train/{k[6:]}" if k.startswith("train_") else k.replace("val_", "val/"): v
                         for k, v in row.items() if k != "epoch"} | {"epoch": epoch + 1}, step=epoch + 1)
            print(f"{step} epoch {epoch + 1}/{epochs}: train loss {row['train_loss']:.4f}, val top-1 "
                  f"{row['val_top1']:.2f}, top-5 {row['val_top5']:.2f}, {images_per_s:.0f} img/s", flush=True)

    # ------------------------------------------------------------------ summary
    infer = inference_throughput(model, p.resolution, t.throughput_batch, device, t.channels_last, autocast)
    ref = paper_step(step) or {}
    final = history[-1]
    summary = {
        "step": step, "seed": cfg.seed, "kernel_size": spec.block.kernel_size, "profile": p.name,
        "data": cfg.data.name, "recipe": r.name,
        "final_top1": final["val_top1"], "final_top5": final["val_top5"],
        "best_top1": max(h["val_top1"] for h in history), "best_top5": max(h["val_top5"] for h in history),
        **paper_model_stats, **run_stats,
        "train_images_per_s": sorted(train_images_per_s)[len(train_images_per_s) // 2] if train_images_per_s
        else None,
        "infer_images_per_s": infer, "wall_time_s": elapsed_before + time.perf_counter() - run_start,
        "epochs": epochs, "global_batch": global_batch, "lr": lr, "world_size": world.world,
        "device": str(device), "precision": t.precision,
        "scaled": describe(cfg, spec),
        "paper_top1": ref.get("top1"), "paper_gflops": ref.get("gflops"),
        "git_commit": git_commit(), "config_hash": chash,
    }
    if ema is not None and "ema_val_top1" in final:
        summary.update(ema_final_top1=final["ema_val_top1"], ema_final_top5=final["ema_val_top5"])
    if world.main:
        atomic_write_json(summary_path, summary)
        tracker.summary({k: v for k, v in summary.items() if not isinstance(v, dict)})
        tracker.finish()
        print(f"{step} seed {cfg.seed}: final top-1 {summary['final_top1']:.2f} (best {summary['best_top1']:.2f}), "
              f"top-5 {summary['final_top5']:.2f}, {summary['wall_time_s']:.0f} s", flush=True)
    if world.world > 1:
        dist.barrier()
    return summary
