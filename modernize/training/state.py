"""The resumable state of a run, and its checkpoint file (`<run dir>/last.pt`).

One object owns everything a resumed run needs to continue exactly where it stopped: the weights, the
optimizer, the lr schedule, the fp16 loss scaler, the EMA, the position in the run, the metrics so far, the
running loss of a cut epoch, every process's RNG stream, the W&B run id and the time already spent. Save and
resume both go through `state_dict()` / `load_state_dict()`, so the two cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..design.config import recorded_label
from ..io import atomic_write
from .runtime import RunError, rng_state, set_rng_state

CHECKPOINT_VERSION = 1


class TrainState:
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, scaler: torch.amp.GradScaler,
                 ema: nn.Module | None):
        self.model, self.optimizer, self.scheduler, self.scaler, self.ema = model, optimizer, scheduler, scaler, ema
        self.epoch = 0  # epochs finished
        self.step_in_epoch = 0  # optimizer steps done in the current epoch (a mid-epoch checkpoint)
        self.epoch_loss = {"loss_sum": 0.0, "seen": 0}  # the running train loss of an epoch cut mid-way
        self.history: list[dict[str, float]] = []  # one metrics row per finished epoch
        self.wandb_id: str | None = None
        self.seconds_before = 0.0  # wall time of the run before this process resumed it
        self._clock = time.perf_counter()

    def start_clock(self) -> None:
        self._clock = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return self.seconds_before + time.perf_counter() - self._clock

    def state_dict(self, per_process: list[dict[str, Any]]) -> dict[str, Any]:
        """`per_process`: every process's {"rng": ..., "epoch_loss": ...} in rank order (see `local_state`)."""
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "history": self.history,
            "rng": [p["rng"] for p in per_process], "partial": [p["epoch_loss"] for p in per_process],
            "wandb_id": self.wandb_id, "elapsed_s": self.elapsed_s,
        }

    def local_state(self) -> dict[str, Any]:
        """What differs between processes: each one's RNG stream and its running loss of a cut epoch."""
        return {"rng": rng_state(), "epoch_loss": dict(self.epoch_loss)}

    def load_state_dict(self, state: dict[str, Any], rank: int) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.epoch, self.step_in_epoch, self.history = state["epoch"], state["step_in_epoch"], state["history"]
        self.wandb_id, self.seconds_before = state.get("wandb_id"), state["elapsed_s"]
        rngs, partials = state["rng"], state["partial"]
        if isinstance(partials, dict):  # checkpoints before per-process partial losses kept the main one only
            partials = [partials]
        own = rank if rank < len(rngs) else 0  # each process continues its own stream (a new count: the main's)
        set_rng_state(rngs[own])
        self.epoch_loss = dict(partials[min(own, len(partials) - 1)])
        self.start_clock()


def save_checkpoint(path: Path, state: TrainState, per_process: list[dict[str, Any]], config_hash: str,
                    label: str) -> None:
    payload = {"version": CHECKPOINT_VERSION, "config_hash": config_hash, "label": label,
               **state.state_dict(per_process)}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path, expected_hash: str, label: str,
                    differences: Callable[[], str] = lambda: "") -> dict[str, Any]:
    """The checkpoint's contents, after checking it is ours and belongs to this very config (`differences`: how the
    folder's config differs from this one, for the error)."""
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
        theirs = recorded_label(state)
        raise RunError(f"checkpoint {path} belongs to another config (run {theirs}, config hash "
                       f"{state['config_hash']}; this run: {label}, hash {expected_hash}{differences()}). Use another "
                       f"run directory (hydra.run.dir=... or sweep_name=...) or delete the checkpoint.")
    return state
