"""How a sweep's runs are launched (modernize.training.sweeps runs the sweep; `python -m modernize.sweep` prints these):

    python -m modernize.sweep --steps          # resnet50,recipe,...,separate_downsampling: +step=<this>
    python -m modernize.sweep --delta-lists separate_downsampling+silu separate_downsampling-gelu
                                               # [recipe,...,silu],[recipe,...]: "+delta=<this>" trains those labels
    python -m modernize.sweep --launch gpu     # hydra/launcher=joblib hydra.launcher.n_jobs=6 train.threads=2
    python -m modernize.sweep --launch gpu --runs-at-once 3 | --launcher slurm

`--launch`: how a sweep's runs are launched. An explicit --launcher is used as given. Otherwise the profile's
`runs_at_once` decides: 1 runs one run after another (Hydra's basic launcher); N > 1 runs N at once on this
machine's one device (joblib, one process each, the cores shared out as torch threads); `auto` measures it on a
CUDA device (runs_that_fit: the peak memory of one training step of the profile's largest step, against the free
memory) and is 1 elsewhere. A small model does not fill a GPU: its step is bound by kernel launches, so runs side by
side multiply the images/s (nine ran at once on an H200 at about the speed of one: docs/performance.md).
"""

from __future__ import annotations

import os

from ..design.roadmap import STEPS

# Per run, on top of the allocator's peak: the CUDA context and the in-memory data set on the device (Fashion-MNIST as
# uint8 x 3 channels is 0.2 GB), and a margin for the allocator's fragmentation across a run's steps.
CONTEXT_BYTES = 1 << 30
PEAK_MARGIN = 1.25


def runs_that_fit(free_bytes: int, peak_bytes: int, cores: int) -> int:
    """How many runs fit a device with `free_bytes` free when one run's training step peaks at `peak_bytes`: at least
    one, and no more than there are cores (each run's Python loop needs one)."""
    per_run = peak_bytes * PEAK_MARGIN + CONTEXT_BYTES
    return max(1, min(cores, int(free_bytes // per_run)))


def measured_runs_at_once(profile: str) -> int:
    """`auto`: the largest training-step peak over the roadmap's steps at this profile's sizes, each step built as its
    run builds it (modernize.training.train.train_step_of: its recipe's optimizer, precision, EMA), on the CUDA device,
    against the device's free memory; 1 without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return 1
    from ..design.config import compose
    from .engine import memory_format_of, peak_step_memory, random_batch
    from .train import step_to_measure

    device, classes = torch.device("cuda"), 10
    peak = 0
    for step in STEPS:
        cfg = compose([f"+step={step}", f"profile={profile}"])
        train_step = step_to_measure(cfg, classes, device)
        x, y = random_batch(int(cfg.profile.batch_size), int(cfg.profile.resolution), classes, device,
                            memory_format_of(cfg.train.channels_last))
        peak = max(peak, peak_step_memory(train_step, x, y, reserved=True))
        del train_step, x, y
        torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info(device)
    return runs_that_fit(free, peak, os.cpu_count() or 1)


def launch_overrides(profile: str, launcher: str | None = None, runs_at_once: int | None = None) -> list[str]:
    """The Hydra overrides that launch a sweep of `profile` (see the module's docstring)."""
    if launcher:
        return [f"hydra/launcher={launcher}"]
    if runs_at_once is None:
        from omegaconf import OmegaConf

        from ..design.config import compose

        setting = OmegaConf.select(compose([f"profile={profile}"]).profile, "runs_at_once", default=1)
        if setting == "auto":
            runs_at_once = measured_runs_at_once(profile)
        elif isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1:
            runs_at_once = setting
        else:
            raise ValueError(f"profile.runs_at_once must be a positive integer or 'auto', got {setting!r} "
                             f"(profile {profile})")
    if runs_at_once < 1:
        raise ValueError(f"runs at once must be a positive integer, got {runs_at_once}")
    if runs_at_once == 1:
        return ["hydra/launcher=basic"]
    threads = max(1, (os.cpu_count() or 1) // runs_at_once)
    return ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={runs_at_once}", f"train.threads={threads}"]
