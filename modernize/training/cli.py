"""`python run.py ...`: the Hydra entry point. Tasks: train (default), profile and eval."""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ..design.config import check_setting_keys, check_step_overrides, kernel_size_of, model_spec, run_label_of
from ..design.flops import count_gflops, count_params
from ..io import atomic_write_json
from ..design.model import build
from ..design.peers import PeerSpec
from ..design.spec import ModelSpec
from ..design.roadmap import paper_reference
from .checks import check_profile, check_recipe

TASKS = ("train", "profile", "eval", "preflight")


def profile(cfg: DictConfig) -> dict:
    """Build the step's model (the paper's: full width, 224 px, 1000 classes) and print what it is, then the recipe
    as the profile trains it (modernize.training.proxy's rules applied)."""
    check_recipe(cfg.recipe)  # the recipe it prints must be one a run would accept
    check_profile(cfg.profile)
    spec = model_spec(cfg)
    model = build(spec)
    step = run_label_of(cfg)
    if isinstance(spec, PeerSpec):
        describe_peer(spec)
    else:
        describe_convnet(spec, model, step, cfg.model.name)
    params, gflops = count_params(model), count_gflops(model, 224)
    ref = paper_reference(step) or {}
    published = [f"{ref['params'] / 1e6:.1f}M params" if ref.get("params") else "",
                 f"{ref['gflops']} GFLOPs" if ref.get("gflops") else "",
                 f"top-1 {ref['top1']}" if ref.get("top1") else ""]
    paper = (f"paper ({ref['source']}): {', '.join(p for p in published if p)}" if ref
             else "paper: no number for this model")
    print(f"  params {params:,}, GFLOPs at 224x224 {gflops:.3f} ({paper})")
    recipe = trained_recipe(cfg)
    print(f"recipe {recipe['name']} at profile={cfg.profile.name} (as trained; docs/recipe.md compares it with the "
          f"official code):")
    for line in describe_recipe(recipe):
        print(f"  {line}")
    result = {"label": step, "params": params, "gflops_224": round(gflops, 4),
              "paper_gflops": ref.get("gflops"), "paper_top1": ref.get("top1"),
              "recipe": recipe}
    print(json.dumps(result))
    return result


def describe_convnet(spec: ModelSpec, model, step: str, base: str) -> None:
    """task=profile's lines of a ConvNet: stem, block, downsampling and stages."""
    print(f"step {step}: {base} base")
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


def describe_peer(spec: PeerSpec) -> None:
    """task=profile's lines of a transformer of the paper's tables: what timm builds."""
    import timm

    window = f", window {spec.window_size}x{spec.window_size}" if spec.window_size else ""
    print(f"{spec.name}: timm {timm.__version__} {spec.timm} (the paper's transformer, built by timm)")
    print(f"  patch {spec.patch_size}x{spec.patch_size}{window}, widths {list(spec.stage_dims())}, depths "
          f"{list(spec.depths)}, heads {list(spec.num_heads)}, drop path {spec.drop_path_rate}")


def trained_recipe(cfg: DictConfig) -> dict:
    """The recipe as the profile trains it: epochs, the global batch and its lr, and every recipe field after the
    profile's rules (modernize.training.proxy), with the EMA decay of its rule (the horizon rule needs the run's steps,
    known only once the data is loaded: then null here, and the decay is in summary.json)."""
    from .proxy import effective_recipe, ema_decay, is_folder_data, rule, run_spec
    from .recipe import scaled_lr

    profile = cfg.profile
    epochs, recipe = effective_recipe(cfg)
    batch = int(profile.batch_size or recipe["batch_size"])
    recipe.update(run_epochs=epochs, batch_size=batch, lr=scaled_lr(recipe["lr"], batch, recipe["lr_batch"],
                                                                 profile.lr_scaling),
                  lr_scaling=str(profile.lr_scaling), accumulation_steps=cfg.train.accumulation_steps,
                  ema_rule=rule(profile, "ema_rule"), precision=str(cfg.train.precision),
                  folder_data=is_folder_data(cfg))
    if recipe["folder_data"]:  # the loader workers' per-image pipelines, by their ops' names
        from ..data.augment import folder_transforms
        from ..data.datasets import MEAN_STD

        mean, std = MEAN_STD[cfg.data.name]
        train, evaluate = folder_transforms(recipe, resolution=int(profile.resolution), mean=mean, std=std)
        recipe.update(loader_train=" -> ".join(type(t).__name__ for t in train.transforms),
                      loader_eval=" -> ".join(type(t).__name__ for t in evaluate.transforms))
    horizon = rule(profile, "ema_rule") == "horizon"
    recipe["recipe_ema_decay"] = recipe["ema_decay"]
    recipe["ema_decay"] = None if horizon else ema_decay(profile, recipe["ema_decay"], 1)
    spec = run_spec(cfg, num_classes=1)
    recipe.update(drop_path_rate=round(spec.drop_path_rate, 6), layer_scale_init=spec.block.layer_scale_init)
    return recipe


def describe_recipe(r: dict) -> list[str]:
    """The trained recipe as a few readable lines."""
    opt = (f"AdamW betas {tuple(r['betas'])}" if r["optimizer"] == "adamw"
           else f"SGD momentum {r['momentum']}{' nesterov' if r['nesterov'] else ''}")
    share = r["run_epochs"] / r["epochs"]  # warmup and milestones keep their share of the run (recipe.make_scheduler)
    schedule = (f"x{r['gamma']:g} at epochs {[round(m * share, 2) for m in r['milestones']]} (the recipe's "
                f"{list(r['milestones'])} of {r['epochs']})" if r["schedule"] == "step"
                else f"{r['warmup_epochs'] * share:g}-epoch linear warmup (the recipe's {r['warmup_epochs']} of "
                     f"{r['epochs']}), cosine to {r['min_lr']:g}")
    decay = "all parameters" if r["decay_norm_and_bias"] else "not on norms, biases, layer scale"
    crop = (f"random-resized crop {list(r['random_resized_crop_scale'])}" if r["random_resized_crop"]
            else "no random crop (resize, centre crop)")
    ra = (f"RandAugment {r['randaugment'][0]:g} (std {r['randaugment'][1]:g})" if r["randaugment"]
          else "no RandAugment")
    horizon = r["ema_rule"] == "horizon" and r["recipe_ema_decay"] is not None
    ema = (f"EMA {r['ema_decay']:g}" if r["ema_decay"] else
           "EMA by the horizon rule (its decay in summary.json)" if horizon else "no EMA")
    return [
        f"optimizer: {opt}, lr {r['lr']:.4g} at global batch {r['batch_size']} ({r['lr_scaling']} scaling of "
        f"{r['lr_batch']}-batch lr), accumulation steps {r['accumulation_steps']}",
        f"schedule: {r['run_epochs']} epochs, {schedule}",
        f"weight decay {r['weight_decay']:g} ({decay}), label smoothing {r['label_smoothing']:g}",
        f"augmentation: {crop}, flip {r['hflip']}, {ra}, Mixup {r['mixup']:g}, CutMix {r['cutmix']:g}, random "
        f"erasing {r['random_erasing']:g}, " + (
            f"fill {r['random_erasing_mode']}, interpolation {r['interpolation']}" if r["folder_data"] else
            "batched on the device (docs/recipe.md: in-memory data sets)"),
        *([f"loader ({r['pipeline']}'s transforms): {r['loader_train']}", f"eval: {r['loader_eval']}"]
          if r["folder_data"] else []),
        f"model: drop path {r['drop_path_rate']:g}, layer scale {r['layer_scale_init']:g}; {ema}; "
        f"precision {r['precision']}",
    ]


def run_task(cfg: DictConfig, run_dir: Path, multirun: bool):
    """Run the task. In a multirun, a failure is recorded in failed.json and the sweep goes on; a stop signal
    (modernize.training.interrupt) ends the run and the sweep with the shell's 128 + signal number, after one line. The
    run folder Hydra made is removed again where the task wrote nothing in it (task=profile, a refused run)."""
    try:
        return run_task_in(cfg, run_dir, multirun)
    finally:
        remove_if_empty(run_dir)


def remove_if_empty(run_dir: Path) -> None:
    """Remove an empty run folder, and its sweep folder if that is empty then too: a folder of nothing would look
    like a run that never started."""
    for folder in (run_dir, run_dir.parent):
        try:
            folder.rmdir()  # only ever removes an empty folder
        except OSError:
            return


def run_task_in(cfg: DictConfig, run_dir: Path, multirun: bool):
    from ..data.datasets import DataError
    from .interrupt import Interrupted
    from ..io import WriteError
    from .lock import RunDirBusy
    from .runtime import RunError
    from .train import train

    if cfg.task not in TASKS:
        print(f"error: task must be one of {', '.join(TASKS)}, got {cfg.task!r}", file=sys.stderr)
        sys.exit(2)
    try:
        if cfg.task == "profile":
            return profile(cfg)
        if cfg.task == "eval":
            from .evaluation import evaluate_weights

            return evaluate_weights(cfg)
        if cfg.task == "preflight":
            return preflight_task(cfg, run_dir)
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
                    "label": run_label_of(cfg), "seed": cfg.seed, "kernel_size": kernel_size_of(cfg),
                    "error": f"{type(e).__name__}: {message.splitlines()[0]}",
                    "traceback": traceback.format_exc()})
        if multirun:
            print(f"error in {run_label_of(cfg)} seed {cfg.seed}: {message}", file=sys.stderr)
            return None
        if not expected:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def preflight_task(cfg: DictConfig, run_dir: Path) -> dict:
    """task=preflight with the command line's overrides and launcher, which only Hydra's own config holds."""
    from hydra.core.hydra_config import HydraConfig

    from .preflight import preflight

    if not HydraConfig.initialized():  # called in-process (tests): no command line, no launcher
        return preflight(cfg, run_dir, [], [], None)
    hydra_cfg = HydraConfig.get()
    return preflight(cfg, run_dir, list(hydra_cfg.overrides.task), list(hydra_cfg.overrides.hydra),
                     hydra_cfg.launcher)


def validate_argv(argv: list[str]) -> None:
    try:
        overrides = [a for a in argv[1:] if not a.startswith("-")]
        check_step_overrides(overrides)
        check_setting_keys(overrides)
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
