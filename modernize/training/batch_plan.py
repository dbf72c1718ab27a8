"""The batch arithmetic of a run: processes x device batch x accumulation steps = the recipe's global batch.

The paper's recipes fix the global batch (4096 for ConvNeXt, 256 for ResNet-50's original recipe; appendix A.1) and
the lr follows it. How a cluster meets it is the user's hardware: 8 GPUs of 80 GB hold 128 ConvNeXt-T images each
at 224 px, so 4096 = 8 x 128 x 4 micro-batches (the official code's `--update_freq 4`). `train.accumulation_steps=auto`
does that division: from the processes and the per-device batch (`train.device_batch`, or the largest that fits:
measured on CUDA as `profile.runs_at_once: auto` measures a step, estimated on the CPU) it picks the micro-batches per
optimizer step, and refuses a global batch that cannot be met exactly, since a rounded one would change the lr the
recipe implies. On the CPU a plan whose step would not fit the memory is refused before the run starts, with the
numbers and the device batch that fits: the kernel's OOM killer would end it without a word.

The device batch is also BatchNorm's batch: its statistics are those of one micro-batch on one device (as the
official code's and torchvision's reference's per-GPU BatchNorm), so the plan says it for every model with BatchNorm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from .runtime import RunError, local_processes

AUTO = "auto"


@dataclass(frozen=True)
class BatchPlan:
    processes: int
    device_batch: int  # images per forward pass on one device (a micro-batch)
    accumulation_steps: int  # micro-batches per optimizer step
    global_batch: int
    lr: float
    batch_norm_batch: int | None  # images per BatchNorm statistic (None: the model has no BatchNorm)

    def line(self) -> str:
        norm = (f"BatchNorm statistics over {self.batch_norm_batch} images" if self.batch_norm_batch
                else "no BatchNorm")
        return (f"batch: {self.processes} process(es) x device batch {self.device_batch} x {self.accumulation_steps} "
                f"accumulation step(s) = global batch {self.global_batch}; lr {self.lr:.4g}; {norm}")

    def as_dict(self) -> dict:
        return asdict(self)


def divisors_up_to(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def plan_batch(global_batch: int, processes: int, lr: float, *, accumulation: int | str, device_batch: int | None,
               has_batch_norm: bool, largest_fitting: Callable[[int], int] | None = None) -> BatchPlan:
    """The plan for `processes` processes: with an accumulation count, the device batch it implies (checked against
    `device_batch` when that is given); with 'auto', the micro-batches that `device_batch` (else
    `largest_fitting(per_process_batch)`, the measured one on CUDA, else the whole per-process batch) implies.
    Raises RunError, in one line with the numbers, where the global batch cannot be met exactly."""
    if global_batch % processes:
        raise RunError(f"the global batch {global_batch} does not split over {processes} processes "
                       f"({global_batch} / {processes} = {global_batch / processes:.4g}): launch a number of processes "
                       f"that divides {global_batch}")
    per_process = global_batch // processes
    if accumulation != AUTO:
        if per_process % accumulation:
            raise RunError(f"{processes} process(es) x {accumulation} accumulation steps do not divide the global "
                           f"batch {global_batch} ({per_process} per process / {accumulation} = "
                           f"{per_process / accumulation:.4g}): use train.accumulation_steps=auto or a divisor of "
                           f"{per_process}")
        implied = per_process // accumulation
        if device_batch is not None and device_batch != implied:
            raise RunError(f"{processes} process(es) x train.device_batch={device_batch} x train.accumulation_steps="
                           f"{accumulation} = {processes * device_batch * accumulation}, not the global batch "
                           f"{global_batch}: use train.accumulation_steps=auto, or train.device_batch={implied}")
        micro = implied
    else:
        micro = device_batch if device_batch is not None else (
            largest_fitting(per_process) if largest_fitting is not None else per_process)
        if micro > per_process:
            raise RunError(f"train.device_batch={micro} is more than each process's share of the global batch "
                           f"({global_batch} / {processes} processes = {per_process}): use at most {per_process}")
        if per_process % micro:
            raise RunError(f"the global batch {global_batch} cannot be met exactly with {processes} process(es) x "
                           f"device batch {micro}: {global_batch} / ({processes} x {micro}) = "
                           f"{global_batch / (processes * micro):.4g} micro-batches; use train.device_batch="
                           f"{divisors_up_to(per_process, micro)[-1]} (the largest divisor of {per_process} below "
                           f"{micro})")
        accumulation = per_process // micro
    return BatchPlan(processes=processes, device_batch=micro, accumulation_steps=int(accumulation),
                     global_batch=global_batch, lr=lr, batch_norm_batch=micro if has_batch_norm else None)


# ------------------------------------------------------------------------------- the largest device batch on CUDA
MEMORY_SHARE = 0.8  # of the free memory: the allocator's fragmentation over a run, EMA copies made later, cuDNN


def largest_fitting_batch(per_process: int, peak_at: Callable[[int], int], free_bytes: int) -> int:
    """The largest divisor of `per_process` whose training step fits MEMORY_SHARE of `free_bytes`, from a step's
    peak memory measured at two small batches (peak = fixed + batch x per image: weights, gradients and optimizer
    state are fixed, activations grow with the batch). At least 1."""
    small, larger = 1, min(per_process, 4)
    p_small, p_large = peak_at(small), peak_at(larger) if larger > small else None
    per_image = (p_large - p_small) / (larger - small) if p_large is not None else p_small
    fixed = p_small - per_image * small
    budget = free_bytes * MEMORY_SHARE
    fitting = [d for d in divisors_up_to(per_process, per_process) if fixed + d * max(per_image, 1) <= budget]
    return fitting[-1] if fitting else 1


def measured_device_batch(build_step: Callable[[], Callable], resolution: int, classes: int, device,
                          per_process: int, channels_last: bool) -> int:
    """largest_fitting_batch on this CUDA device: `build_step()` returns a fresh model's training step (the run's
    own optimizer, precision and EMA: modernize.training.train.step_to_measure), measured for its tensors' peak
    (engine.peak_step_memory). The caller's RNG is left as it was."""
    import torch

    from .engine import memory_format_of, peak_step_memory, random_batch

    def peak_at(batch: int) -> int:
        step = build_step()
        x, y = random_batch(batch, resolution, classes, device, memory_format_of(channels_last))
        torch.cuda.empty_cache()
        peak = peak_step_memory(step, x, y, reserved=False)
        del step, x, y
        torch.cuda.empty_cache()
        return peak

    with torch.random.fork_rng(devices=[device]):
        torch.cuda.empty_cache()
        free = torch.cuda.mem_get_info(device)[0]
        return largest_fitting_batch(per_process, peak_at, free)


# ----------------------------------------------------------------------------- a training step's memory on the CPU
# The CPU has no allocator statistics to measure a step's peak with, so it is estimated from what autograd saves for
# the backward pass in one forward at a small batch. Two real training steps added to the resident memory 1.02x
# those bytes for ResNet-50 at 448 px, batch 64 (5.2 GiB saved), and 1.15-1.50x at 64-256 px, batch 16-64 (0.1-1.5 GiB
# saved: ResNet-50, inverted_bottleneck, gelu, separate_downsampling), where a few hundred MiB that do not grow with
# the batch (oneDNN's workspaces, the allocator's free lists) weigh more: hence a margin and a constant
# (benchmarks/step_memory.py, docs/performance.md section 7).
STEP_OVER_SAVED = 1.25
STEP_CONSTANT = 384 * 2**20
STATE_COPIES = 5  # the weights, their gradients, AdamW's two moments and the EMA's copy


@dataclass(frozen=True)
class StepMemory:
    """A training step's estimated peak memory on the CPU: `fixed` + device batch x `per_image` bytes."""

    fixed: int
    per_image: int

    def at(self, batch: int) -> int:
        return self.fixed + batch * self.per_image


def cpu_step_memory(model, resolution: int, classes: int, memory_format, batch: int = 2) -> StepMemory:
    """StepMemory of `model` (on the CPU, in train mode) from one forward pass at `batch` images of `resolution` px.
    The caller's RNG is left as it was."""
    import torch
    import torch.nn.functional as F

    from .engine import random_batch

    saved: dict[int, int] = {}  # storage address -> bytes: a tensor saved twice (or a view of one) counts once

    def pack(tensor):
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    with torch.random.fork_rng(devices=[]):
        x, y = random_batch(batch, resolution, classes, torch.device("cpu"), memory_format)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = F.cross_entropy(model(x), y)
        del loss
    activations = sum(size for address, size in saved.items() if address not in weights) / batch
    parameter_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return StepMemory(fixed=STATE_COPIES * parameter_bytes + STEP_CONSTANT,
                      per_image=int(STEP_OVER_SAVED * activations + input_bytes(resolution)))


def input_bytes(resolution: int) -> int:
    """An image's share of a step's input: the float batch and its augmented copy."""
    return 3 * resolution * resolution * 4 * 2


def largest_fitting_on_cpu(memory: StepMemory, available: int) -> Callable[[int], int]:
    """largest_fitting_batch for the CPU, from the estimate: each local process gets its share of `available`."""
    share = available // local_processes()
    return lambda per_process: largest_fitting_batch(per_process, memory.at, share)


def check_fits_on_cpu(plan: BatchPlan, memory: StepMemory, available: int, what: str) -> None:
    """Refuse, in one line with the numbers and the fix, a plan whose training step would not fit the memory."""
    share = available // local_processes()
    need = memory.at(plan.device_batch)
    if need <= share * MEMORY_SHARE:
        return
    per_process = plan.global_batch // plan.processes
    fits = largest_fitting_batch(per_process, memory.at, share)
    fix = (f"train.device_batch={fits} train.accumulation_steps=auto (the same global batch {plan.global_batch} in "
           f"{per_process // fits} accumulation steps; accumulation_steps=auto alone picks it)"
           if memory.at(fits) <= share * MEMORY_SHARE else "a lower profile.resolution or a smaller model")
    gib = 2**30
    raise RunError(f"{what}: a training step at device batch {plan.device_batch} needs about {need / gib:.1f} GiB "
                   f"({memory.per_image / 2**20:.0f} MiB per image, estimated) and this machine has "
                   f"{share / gib:.1f} GiB available{' per process' if local_processes() > 1 else ''} (a step may "
                   f"use {MEMORY_SHARE:.0%}): use {fix}")
