"""One training step, evaluation and timing: the single copy that `modernize.train` runs and `modernize.bench`
times, so the benchmark measures the pipeline the runs use."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLoss(FloatingPointError):
    """The loss of a step was inf or NaN. Raised before the optimizer touches the weights, or, when the check is
    deferred (`TrainStep.defer_finite_check`), at the next `TrainStep.raise_if_nonfinite`: `steps_ago` says how
    many steps before that call the loss went bad (0: this step)."""

    def __init__(self, value: float, steps_ago: int = 0):
        super().__init__(f"the loss became {value}")
        self.value, self.steps_ago = value, steps_ago


def compile_model(model: nn.Module) -> nn.Module:
    """torch.compile with static shapes. A training run's batches all have one shape (drop_last), so nothing is
    lost; the default (dynamic after the first recompile) traced every model after the first in one benchmark
    process with a symbolic size, and Inductor failed on ConvNeXt-T's downsampling with one (torch 2.14: "cannot
    determine truth value of Relational: 96*((s0//4)) < 96")."""
    return torch.compile(model, dynamic=False)


def autocast(device_type: str, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to the precision's dtype; fp32 runs without it."""
    dtype = PRECISIONS[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)


def make_scaler(device_type: str, precision: str) -> torch.amp.GradScaler:
    """fp16 needs loss scaling (its range underflows small gradients); bf16 and fp32 do not."""
    return torch.amp.GradScaler(device_type, enabled=precision == "fp16")


@dataclass
class TrainStep:
    """One optimizer step: autocast forward and loss, backward (scaled for fp16), optional gradient clipping,
    the optimizer, then the lr schedule and the EMA when the run has them.

    A non-finite loss stops the run. On the CPU it is checked before the backward pass, so the weights never see
    it. On a GPU, reading the loss on the host every step would make the host wait for the GPU in the middle of
    each step, and in this project's small-image profiles the GPU is idle while the host launches kernels
    (`modernize.bench` section 3), so the two would run in series. So with ``defer_finite_check`` the step only
    remembers, on the device, the first bad step, and the loop calls `raise_if_nonfinite` at the points where it
    reads the host anyway (progress lines, checkpoints, the end of an epoch): a checkpoint is never written after a
    bad step, and the error names the step where the loss went bad."""

    forward: nn.Module  # what is called: the model, maybe compiled and/or wrapped in DistributedDataParallel
    model: nn.Module  # the bare model: its parameters are clipped and followed by the EMA
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    precision: str = "fp32"
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    ema: torch.optim.swa_utils.AveragedModel | None = None
    grad_clip: float | None = None
    defer_finite_check: bool = False

    def __post_init__(self) -> None:
        self._calls = 0
        self._first_bad: tuple[torch.Tensor, torch.Tensor] | None = None  # (its call number or -1, its loss)

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with autocast(inputs.device.type, self.precision):
            loss = self.criterion(self.forward(inputs), targets)
        self._calls += 1
        if self.defer_finite_check:
            self._remember_if_nonfinite(loss.detach().float())
        elif not torch.isfinite(loss):
            raise NonFiniteLoss(loss.item())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss.detach()

    def _remember_if_nonfinite(self, loss: torch.Tensor) -> None:
        """Device-side: keep the first call whose loss is not finite (no host sync)."""
        if self._first_bad is None:
            self._first_bad = (torch.full((), -1, dtype=torch.int64, device=loss.device), torch.zeros_like(loss))
        step, value = self._first_bad
        first = ~torch.isfinite(loss) & (step < 0)
        self._first_bad = (torch.where(first, self._calls, step), torch.where(first, loss, value))

    def raise_if_nonfinite(self) -> None:
        """Raise NonFiniteLoss for the first deferred bad step, if there was one (a host sync; a no-op when the check
        is not deferred: then the step itself has raised)."""
        if self._first_bad is None:
            return
        step, value = (t.item() for t in self._first_bad)
        if step >= 0:
            raise NonFiniteLoss(value, steps_ago=self._calls - step)


def prepare_batch(images: torch.Tensor, labels: torch.Tensor, augment: nn.Module, mixing: nn.Module | None,
                  memory_format: torch.memory_format) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of uint8 images on the device -> the model's input (augmented, normalized, in the model's memory
    format) and its targets (Mixup/CutMix soft labels when the recipe mixes)."""
    inputs = augment(images).contiguous(memory_format=memory_format)
    return mixing(inputs, labels) if mixing is not None else (inputs, labels)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, augment: nn.Module, precision: str,
             distributed: bool = False) -> dict[str, float]:
    """Loss, top-1 and top-5 (%) over `batches` (this process's shard; summed over processes when distributed)."""
    model.eval()
    device = next(model.parameters()).device
    stats = torch.zeros(4, device=device, dtype=torch.float64)  # loss sum, top-1 hits, top-5 hits, count
    for images, labels in batches:
        with autocast(device.type, precision):
            logits = model(augment(images)).float()
        hits = logits.topk(min(5, logits.shape[1]), dim=1).indices.eq(labels[:, None])
        stats += torch.stack([nn.functional.cross_entropy(logits, labels, reduction="sum").double(),
                              hits[:, 0].sum().double(), hits.any(dim=1).sum().double(),
                              torch.tensor(float(len(labels)), device=device, dtype=torch.float64)])
    if distributed:
        dist.all_reduce(stats)
    loss, top1, top5, n = stats.tolist()
    return {"loss": loss / n, "top1": 100 * top1 / n, "top5": 100 * top5 / n}


def sync(device: torch.device) -> None:
    # CUDA kernels run asynchronously: without this the clock would stop before the GPU has finished.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], steps: int, device: torch.device) -> float:
    """Seconds for `steps` calls of fn, with the device idle at both ends."""
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return time.perf_counter() - start


@torch.no_grad()
def inference_throughput(model: nn.Module, resolution: int, batch: int, precision: str,
                         memory_format: torch.memory_format, repeats: int = 5) -> float:
    """Images/s of the forward pass in eval mode (the paper's Table 1 measure): median of `repeats` after two
    untimed warm-up passes."""
    model.eval()
    device = next(model.parameters()).device
    x = torch.randn(batch, 3, resolution, resolution, device=device).contiguous(memory_format=memory_format)

    def forward() -> None:
        with autocast(device.type, precision):
            model(x)

    timed(forward, 2, device)
    times = sorted(timed(forward, 1, device) for _ in range(repeats))
    return batch / times[len(times) // 2]
