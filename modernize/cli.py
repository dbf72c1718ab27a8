"""`python run.py ...`: the Hydra entry point. Tasks: train (default) and profile."""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .config import check_step_overrides, model_spec, step_label
from .flops import count_gflops, count_params
from .io import atomic_write_json
from .model import build
from .roadmap import paper_step

TASKS = ("train", "profile")


def profile(cfg: DictConfig) -> dict:
    """Build the step's model (the paper's: full width, 224 px, 1000 classes) and print what it is."""
    spec = model_spec(cfg)
    model = build(spec)
    step = step_label(cfg)
    print(f"step {step}: {cfg.model.name} base")
    p = spec.stem.patch_size
    stem = f"{p}x{p}/{p} conv" if spec.stem.kind == "patchify" else "7x7/2 conv + max-pool"
    print(f"  stem: {spec.stem.kind} {stem}")
    b = spec.block
    order = "spatial -> pw1 -> pw2" if b.spatial_position == "top" else "pw1 -> spatial -> pw2"
    print(f"  block: {order}, kernel {b.kernel_size}, groups {b.groups}, expansion {b.expansion} "
          f"({'inverted' if b.inverted else 'bottleneck'}), {b.activation} after {list(b.act_after)}"
          f"{' + after residual' if b.act_after_residual else ''}, {b.norm} norm after {list(b.norm_after)}, "
          f"layer scale {b.layer_scale_init or 'off'}, drop path {spec.drop_path_rate}")
    print(f"  downsampling: {spec.downsampling}; head norm: {spec.head_norm}")
    for i, (stage, depth) in enumerate(zip(model.stages, spec.depths)):
        dims = stage.blocks[-1].out_dim
        print(f"  stage {i + 1}: {depth} blocks, width {spec.widths[i]}, residual channels {dims}")
    params, gflops = count_params(model), count_gflops(model, 224)
    ref = paper_step(step)
    print(f"  params {params:,}, GFLOPs at 224x224 {gflops:.3f} (paper: {ref['gflops'] if ref else 'n/a'})")
    result = {"step": step, "params": params, "gflops": round(gflops, 4),
              "paper_gflops": ref["gflops"] if ref else None, "paper_top1": ref["top1"] if ref else None}
    print(json.dumps(result))
    return result


def run_task(cfg: DictConfig, run_dir: Path, multirun: bool):
    """Run the task. In a multirun, a failure is recorded in failed.json and the sweep goes on; a stop signal
    (modernize.interrupt) ends the run and the sweep with the shell's 128 + signal number, after one line."""
    from .datasets import DataError
    from .interrupt import Interrupted
    from .io import WriteError
    from .lock import RunDirBusy
    from .train import RunError, train

    if cfg.task not in TASKS:
        print(f"error: task must be one of {', '.join(TASKS)}, got {cfg.task!r}", file=sys.stderr)
        sys.exit(2)
    try:
        if cfg.task == "profile":
            return profile(cfg)
        result = train(cfg, run_dir)
        (run_dir / "failed.json").unlink(missing_ok=True)
        return result
    except Interrupted as e:  # checkpoint saved: not a failure of this config, so no failed.json
        print(str(e), file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C, or one before training started
        print(f"interrupted; run the same command to resume from {run_dir / 'last.pt'} if it exists",
              file=sys.stderr, flush=True)
        sys.exit(130)
    except Exception as e:
        expected = isinstance(e, (RunError, DataError, ValueError, WriteError))
        message = str(e) or type(e).__name__
        if multirun and not isinstance(e, RunDirBusy):  # a busy folder is another live run's: write nothing there
            with contextlib.suppress(WriteError):  # an unwritable folder: the line below is all there is
                atomic_write_json(run_dir / "failed.json", {
                    "step": step_label(cfg), "seed": cfg.seed, "kernel_size": cfg.model.block.kernel_size,
                    "error": f"{type(e).__name__}: {message.splitlines()[0]}",
                    "traceback": traceback.format_exc()})
        if multirun:
            print(f"error in {step_label(cfg)} seed {cfg.seed}: {message}", file=sys.stderr)
            return None
        if not expected:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def validate_argv(argv: list[str]) -> None:
    try:
        check_step_overrides([a for a in argv[1:] if not a.startswith("-")])
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


class RunDirCheck(Callback):
    """Hydra callback (conf/config.yaml: hydra.callbacks): the run (or sweep) folder must be creatable before Hydra
    creates it, or the run ends with one line naming it instead of Hydra's traceback."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _ensure_dir(OmegaConf.select(config, "hydra.run.dir"), "run")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _ensure_dir(OmegaConf.select(config, "hydra.sweep.dir"), "sweep")


def _ensure_dir(path: str | None, kind: str) -> None:
    if path is None:
        return
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"error: cannot create the {kind} directory {path}: {e.strerror or e}; pass a writable "
              f"hydra.{kind}.dir=... or out_root=...", file=sys.stderr)
        sys.exit(2)
