"""One training step, evaluation and timing: the single copy that `modernize.training.train` runs and `modernize.bench`
times, so the benchmark measures the pipeline the runs use."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLoss(FloatingPointError):
    """The loss of a step was inf or NaN; raised before the optimizer touches the weights."""

    def __init__(self, value: float):
        super().__init__(f"the loss became {value}")
        self.value = value


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

    With ``accumulation_steps`` n > 1 the batch is split into n equal micro-batches, each forward and backward on
    its own (activations for only one in memory), their gradients summed with weights 1/n before the one
    optimizer step, as the official code's --update_freq: the update of a batch of B equals that of n x B/n up to
    float rounding, for any model without BatchNorm (BatchNorm sees micro-batches, as it would on more GPUs).
    Under DistributedDataParallel only the last micro-batch all-reduces (no_sync). An accumulation is never
    split across a checkpoint: the step is atomic, so a run saves and resumes at its boundaries."""

    forward: nn.Module  # what is called: the model, maybe compiled and/or wrapped in DistributedDataParallel
    model: nn.Module  # the bare model: its parameters are clipped and followed by the EMA
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    precision: str = "fp32"
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    ema: torch.optim.swa_utils.AveragedModel | None = None
    ema_decay: float | None = None  # the EMA's, for the summary
    grad_clip: float | None = None
    accumulation_steps: int = 1

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n = self.accumulation_steps
        if len(inputs) % n:
            raise ValueError(f"a batch of {len(inputs)} does not split into {n} equal micro-batches")
        self.optimizer.zero_grad(set_to_none=True)
        loss = torch.zeros((), device=inputs.device)
        for i, (x, y) in enumerate(zip(inputs.chunk(n), targets.chunk(n))):
            last = i == n - 1
            no_sync = self.forward.no_sync if isinstance(self.forward, DDP) and not last else contextlib.nullcontext
            with no_sync():
                with autocast(inputs.device.type, self.precision):
                    micro_loss = self.criterion(self.forward(x), y)
                if not torch.isfinite(micro_loss):  # before the optimizer touches the weights
                    raise NonFiniteLoss(micro_loss.item())
                self.scaler.scale(micro_loss / n if n > 1 else micro_loss).backward()
            loss = loss + micro_loss.detach().float() / n
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss


def prepare_batch(images: torch.Tensor, labels: torch.Tensor, augment: nn.Module, mixing: nn.Module | None,
                  memory_format: torch.memory_format, micro_batches: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of uint8 images on the device -> the model's input (augmented, normalized, in the model's memory
    format) and its targets (Mixup/CutMix soft labels when the recipe mixes). Mixup/CutMix is drawn once per
    micro-batch (TrainStep's split of the batch), as the official loop calls mixup_fn per loader batch under
    --update_freq: one lambda and one choice of Mixup or CutMix for each."""
    inputs = augment(images).contiguous(memory_format=memory_format)
    if mixing is None:
        return inputs, labels
    if micro_batches == 1:
        return mixing(inputs, labels)
    mixed = [mixing(x, y) for x, y in zip(inputs.chunk(micro_batches), labels.chunk(micro_batches))]
    return (torch.cat([x for x, _ in mixed]).contiguous(memory_format=memory_format),
            torch.cat([y for _, y in mixed]))


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable, augment: nn.Module, precision: str, distributed: bool = False,
             memory_format: torch.memory_format | None = None, outputs: list | None = None,
             restrict_to: torch.Tensor | None = None) -> dict[str, float]:
    """Loss, top-1 and top-5 (%) over `batches` (this process's shard; summed over processes when distributed), the
    one evaluation loop of training and task=eval. With `outputs`, each batch's (labels, float logits) is appended
    to it on the CPU, in batch order (task=eval's per-image files). With `restrict_to` (the classes a data set has,
    as the model's indices) also `restricted_top1`: the best of those classes only, as ImageNet-R and -A are scored."""
    model.eval()
    device = next(model.parameters()).device
    # loss sum, top-1 hits, top-5 hits, count, top-1 hits among restrict_to's classes
    stats = torch.zeros(5, device=device, dtype=torch.float64)
    if restrict_to is not None:
        restrict_to = restrict_to.to(device)
    unrestricted = torch.zeros((), device=device, dtype=torch.float64)  # the fifth sum without restrict_to
    for images, labels in batches:
        inputs = augment(images)
        with autocast(device.type, precision):
            logits = model(inputs if memory_format is None else inputs.contiguous(memory_format=memory_format)).float()
        best = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = best.eq(labels[:, None])
        restricted = (restrict_to[logits[:, restrict_to].argmax(dim=1)].eq(labels).sum().double()
                      if restrict_to is not None else unrestricted)
        stats += torch.stack([nn.functional.cross_entropy(logits, labels, reduction="sum").double(),
                              hits[:, 0].sum().double(), hits.any(dim=1).sum().double(),
                              torch.tensor(float(len(labels)), device=device, dtype=torch.float64), restricted])
        if outputs is not None:
            outputs.append((labels.cpu(), logits.cpu()))
    if distributed:
        dist.all_reduce(stats)
    loss, top1, top5_hits, n, restricted_hits = stats.tolist()
    result = {"loss": loss / n, "top1": 100 * top1 / n, "top5": 100 * top5_hits / n, "images": int(n)}
    if restrict_to is not None:
        result["restricted_top1"] = 100 * restricted_hits / n
    return result


def memory_format_of(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def random_batch(batch: int, resolution: int, classes: int, device: torch.device,
                 memory_format: torch.memory_format) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels of a real-size batch, for what is timed or measured rather than trained."""
    x = torch.randn(batch, 3, resolution, resolution, device=device)
    y = torch.randint(classes, (batch,), device=device)
    return x.contiguous(memory_format=memory_format), y


def peak_step_memory(step: Callable, x: torch.Tensor, y: torch.Tensor, *, reserved: bool) -> int:
    """Peak CUDA memory of two training steps on (x, y), the second holding the optimizer's state: the caching
    allocator's reserved bytes, or (reserved=False) the bytes held by tensors."""
    device = x.device
    torch.cuda.reset_peak_memory_stats(device)
    for _ in range(2):
        step(x, y)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_reserved(device) if reserved else torch.cuda.max_memory_allocated(device)


def wait_for_device(device: torch.device) -> None:
    # CUDA kernels run asynchronously: without this the clock would stop before the GPU has finished.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], steps: int, device: torch.device) -> float:
    """Seconds for `steps` calls of fn, with the device idle at both ends."""
    wait_for_device(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    wait_for_device(device)
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
