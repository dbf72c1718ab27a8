"""Training throughput (forward + loss + backward + AdamW step, images/s) of our models, written as markdown.

    python -m modernize.bench                                   # CPU: a few minutes, experiments/bench/cpu.md
    python -m modernize.bench --precision bf16 --channels-last  # GPU: experiments/bench/<gpu name>.md
    python -m modernize.bench --profile gpu --precision bf16 --channels-last   # ... and section 4 for `gpu`

Sections:
1. our ResNet-50 and ConvNeXt-T against torchvision's and timm's, in one process and interleaved;
2. every roadmap step (ours only);
3. the real per-step pipeline of `modernize.training.train` on in-memory uint8 data against the bare model step;
4. every step's end-to-end step at a profile's sizes and recipe rules (--profile: `cpu` on a CPU, `gpu` on a GPU),
   and so what one seed of the profile's roadmap costs on this device before it is trained;
5. folder data (ImageNet) at 224 px: images/s of one loader worker, ours (modernize.datasets + the recipe's
   augment.folder_transforms) against timm's own loader with the official code's transforms.

Timings on a shared machine drift (other processes, turbo, thermal state). Comparisons are therefore
interleaved (A B A B ...) so that drift hits both sides alike, every number is the median of several
repeats, and the spread of the per-repeat ratios is printed next to each ratio as the noise estimate.
No unit test asserts on these numbers: speed targets live here, in the report.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import itertools
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torchvision
from omegaconf import DictConfig, OmegaConf
from torch import nn

from modernize.data import datasets
from modernize.data.augment import build_augmentations, recipe_crop
from modernize.training.batches import InMemoryBatches
from modernize.design.config import build_model, compose, config_names, model_spec
from modernize.training.engine import memory_format_of, prepare_batch, random_batch, timed
from modernize.design.flops import count_params
from modernize.io import atomic_write_text
from modernize.results.columns import Column, Table, markdown_columns
from modernize.design.model import build
from modernize.design.peers import PeerSpec
from modernize.design.spec import ModelSpec
from modernize.training.proxy import effective_recipe, run_spec
from modernize.training.recipe import make_mixing
from modernize.training.train import RunPlan, train_step_of
from modernize.design.roadmap import STEPS, check_names
from modernize.training.runtime import Processes, pick_device

# ------------------------------------------------------------------------------------------------ options


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m modernize.bench", description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="models and inputs in NHWC memory format, as every profile trains (train.channels_last)")
    p.add_argument("--compile", action="store_true", help="torch.compile ours and the reference alike")
    p.add_argument("--sizes", help="section 1: comma-separated profile names (that profile's training size) and "
                   "resolutions in px (the paper's model at --batch) (default: cpu,64,128,224 on CPU; gpu,224 on GPU)")
    p.add_argument("--resolution", type=int, help="section 2 (default: 224 on GPU, 128 on CPU)")
    p.add_argument("--batch", type=int, help="sections 1-2 (default: 64 on GPU, 16 on CPU)")
    p.add_argument("--repeats", type=int, help="timed repeats per model, median reported (default: 5)")
    p.add_argument("--warmup", type=int, help="untimed steps per model first (default: 3 on GPU, 1 on CPU)")
    p.add_argument("--steps-per-repeat", type=int, help="steps in one timed repeat (default: 10 on GPU, 2 on CPU)")
    p.add_argument("--steps", help="comma-separated roadmap steps for section 2 (default: all)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's, one per core; section 1 "
                   "on a CPU runs at 1 thread and at that)")
    p.add_argument("--profile", help="section 4: what one seed of this profile's roadmap costs here (default: cpu on "
                   "a CPU, gpu on a GPU)")
    p.add_argument("--sections", default="1,2,3,4,5,6", help="comma-separated sections to run (default: all)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and counts, for the tests")
    p.add_argument("--out", default="experiments/bench", help="folder of the <device>.md report")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the device-dependent defaults (explicit flags win over --quick)."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available")
    args.device = pick_device(args.device, 0)  # the training runs' own choice of device
    gpu = args.device.type == "cuda"
    # CPU defaults keep the whole CPU run to a few minutes on 2 cores; GPU ones are ImageNet-sized.
    defaults = {"sizes": "gpu,224" if gpu else "cpu,64,128,224", "resolution": 224 if gpu else 128,
                "batch": 64 if gpu else 16, "repeats": 5, "warmup": 3 if gpu else 1,
                "steps_per_repeat": 10 if gpu else 2}
    if args.quick:
        defaults = {"sizes": "cpu", "resolution": 32, "batch": 2, "repeats": 2, "warmup": 1, "steps_per_repeat": 1}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.steps = [s.strip() for s in args.steps.split(",") if s.strip()] if args.steps else list(STEPS)
    try:
        check_names("step", args.steps, STEPS)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    bad_sections = SystemExit(f"--sections takes numbers 1-{len(SECTIONS)} separated by commas, got {args.sections!r}")
    try:
        args.sections = sorted({int(x) for x in args.sections.split(",") if x.strip()})
    except ValueError:
        raise bad_sections from None
    if not args.sections or not set(args.sections) <= set(SECTIONS):
        raise bad_sections
    profiles = config_names("profile")
    args.profile = args.profile or ("gpu" if gpu else "cpu")
    if args.profile not in profiles:
        raise SystemExit(f"unknown --profile {args.profile!r}; known profiles: {', '.join(profiles)}")
    args.sizes = [x.strip() for x in args.sizes.split(",") if x.strip()]
    bad = [x for x in args.sizes if not (x.isdigit() and int(x) >= 8 or x in profiles)]
    if bad or not args.sizes:
        raise SystemExit(f"--sizes takes profile names ({', '.join(profiles)}) and resolutions in px (>= 8) "
                         f"separated by commas, got {', '.join(bad) or 'nothing'}")
    for name in ("resolution", "batch", "repeats", "warmup", "steps_per_repeat", "threads"):
        if getattr(args, name) is None:
            continue
        if getattr(args, name) < (0 if name == "warmup" else 1):
            raise SystemExit(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    return args


def device_slug(device: torch.device) -> str:
    if device.type != "cuda":
        return device.type
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# ------------------------------------------------------------------------------------------------- timing


@dataclass
class Result:
    images_per_s: list[float] = field(default_factory=list)  # one per timed repeat

    @property
    def median(self) -> float:
        return statistics.median(self.images_per_s)


def time_interleaved(fns: list[Callable[[], None]], images_per_step: list[int], args) -> list[Result]:
    """Interleaved timing of several step functions: warm-up each, then repeats of A B A B ...

    Warm-up runs before any timing so one-off costs (allocator growth, cuDNN autotuning, compilation)
    are not charged to whichever model happens to go first.
    """
    for fn in fns:
        timed(fn, args.warmup, args.device)
    results = [Result() for _ in fns]
    for _ in range(args.repeats):
        for fn, n, result in zip(fns, images_per_step, results):
            result.images_per_s.append(n * args.steps_per_repeat / timed(fn, args.steps_per_repeat, args.device))
    return results


def ratio_stats(a: Result, b: Result) -> tuple[float, float, float]:
    """Median, min and max of the per-repeat ratios a/b (pairs timed back to back share the drift)."""
    ratios = [x / y for x, y in zip(a.images_per_s, b.images_per_s)]
    return statistics.median(ratios), min(ratios), max(ratios)


# ------------------------------------------------------------------------------------------ training step


@functools.cache
def modern_recipe():
    return compose(["recipe=modern"]).recipe


@functools.cache
def train_settings(precision: str, compile_model: bool) -> DictConfig:
    return compose([f"train.precision={precision}", f"train.compile={compile_model}"]).train


# the schedule a bench step sits in: any length the timing cannot see (the lr changes, the work does not)
BENCH_EPOCHS, BENCH_STEPS_PER_EPOCH = 1, 1000


class Trainer:
    """A model ready to be stepped the way `modernize.training.train` steps it: the step is built by the training loop's
    own builder (modernize.training.train.train_step_of: autocast forward, the recipe's loss with its label smoothing,
    backward, scaled AdamW step, its lr schedule), for `recipe` (default: the paper's modern one) at this command's
    precision and compile setting."""

    def __init__(self, model: nn.Module, args, recipe: DictConfig | None = None):
        self.device = args.device
        self.memory_format = memory_format_of(args.channels_last)
        self.model = model.to(self.device, memory_format=self.memory_format).train()
        if args.compile:
            # One process compiles many models here (a training run compiles one): start each from an empty cache,
            # or models sharing a block's code would count against each other's recompile limit and fall back
            # to eager.
            torch._dynamo.reset()
        recipe = recipe or modern_recipe()
        # the config's own train settings (no clipping, no accumulation), at this command's precision and compile
        train_cfg = train_settings(args.precision, bool(args.compile))
        # no EMA: the bench times the optimizer step alone, as it always has
        plan = RunPlan(epochs=BENCH_EPOCHS, recipe=recipe, global_batch=int(recipe.batch_size), lr=float(recipe.lr),
                       profile=OmegaConf.create({"ema_rule": "disabled"}))
        self.step = train_step_of(self.model, plan, BENCH_STEPS_PER_EPOCH, train_cfg)

    @property
    def params_millions(self) -> float:
        return count_params(self.model) / 1e6

    def batch(self, batch: int, resolution: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        return random_batch(batch, resolution, num_classes, self.device, self.memory_format)


def bare_step(trainer: Trainer, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    return lambda: trainer.step(x, y)


# ------------------------------------------------------------------------------------------------ sections


def speed(images_per_s: float | None) -> str:
    """img/s to 3 significant digits, whole from 100 up; "-" where nothing was timed."""
    if images_per_s is None:
        return "-"
    return f"{images_per_s:.3g}" if images_per_s < 100 else f"{images_per_s:.0f}"


def speed_column(name: str, header: str) -> Column:
    return Column(name, header, lambda r: speed(r.get(name)))


def spread_column(fmt: Callable[[float], str]) -> Column:
    """min..max of a row's per-repeat values (`lo`, `hi`), or the row's `note` where it was not timed."""
    return Column("spread", "spread (min..max)", lambda r: r.get("note") or f"{fmt(r['lo'])}..{fmt(r['hi'])}")


RATIO = Column("ratio", "", ".3f", missing="-")  # the header is set per section
RATIO_SPREAD = spread_column(lambda x: f"{x:.3f}")
STEP_COLUMNS = (Column("number", "#", "d", missing="-"), Column("step", "step", lambda r: f"`{r['step']}`",
                                                                       align="left"))
WIDTH = Column("width", "width x", "g", missing="-")


def ratio_row(a: Result, b: Result) -> dict:
    """The ratio columns of a row: the median per-repeat ratio a/b and its min..max."""
    ratio, lo, hi = ratio_stats(a, b)
    return {"ratio": ratio, "lo": lo, "hi": hi}


@dataclass
class Section:
    """One section of the report: its rows are measured data (numbers, not text), rendered once by `table`."""

    title: str
    intro: str
    table: Table
    rows: list[dict] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)

    def add(self, row: dict) -> None:
        """Keep a measured row and print it at once (a long bench shows its progress)."""
        self.rows.append(row)
        print(" | ".join(c.cell(row) for c in markdown_columns(self.table.columns)), flush=True)

    def markdown(self) -> list[str]:
        return [f"## {self.title}", "", self.intro, "", self.table.markdown(self.rows).rstrip("\n"), *self.footer]


def new_section(title: str, intro: str, *columns: Column) -> Section:
    return Section(title, intro, Table(columns, key=""))


def convnext_reference(spec: ModelSpec) -> tuple[str, nn.Module]:
    """timm's hand-written ConvNeXt with our spec's dims, classes, stem stride, layer scale and stochastic depth."""
    import timm

    return "timm convnext_tiny", timm.create_model(
        "convnext_tiny", dims=spec.scaled_widths(), depths=spec.depths, num_classes=spec.num_classes,
        patch_size=spec.stem.stride, ls_init_value=spec.block.layer_scale_init or None,
        drop_path_rate=spec.drop_path_rate)


def resnet_reference(spec: ModelSpec) -> tuple[str, nn.Module]:
    """torchvision's ResNet-50 at the paper's size; at a profile's width, timm's hand-written ResNet with our dims
    (torchvision's hard-codes the widths), its stem and first block given our narrower stem."""
    if spec.scaled_widths() == spec.widths and spec.stem.stride_divisor == 1:
        return "torchvision resnet50", torchvision.models.resnet50(num_classes=spec.num_classes)
    from timm.models.resnet import Bottleneck, ResNet

    ref = ResNet(Bottleneck, list(spec.depths), num_classes=spec.num_classes, channels=spec.scaled_widths())
    stem, first = spec.stem_width(), ref.layer1[0]
    ref.conv1 = nn.Conv2d(3, stem, 7, stride=2 if spec.stem.stride_divisor < 4 else 1, padding=3, bias=False)
    ref.bn1 = nn.BatchNorm2d(stem)
    if spec.stem.stride_divisor > 1:
        ref.maxpool = nn.Identity()
    out = first.conv3.out_channels
    first.conv1 = nn.Conv2d(stem, first.conv1.out_channels, 1, bias=False)
    first.downsample = nn.Sequential(nn.Conv2d(stem, out, 1, bias=False), nn.BatchNorm2d(out))
    return f"timm ResNet, widths {'/'.join(map(str, spec.scaled_widths()))}", ref


@dataclass(frozen=True)
class Size:
    """One size a reference comparison runs at: a profile's (its width, resolution, batch, stem and classes, as
    `python run.py profile=<name>` trains on Fashion-MNIST) or the paper's model at a resolution."""

    label: str
    resolution: int
    batch: int
    profile: str | None = None

    def spec(self, step: str) -> ModelSpec:
        return self.spec_of([f"+step={step}"])

    def spec_of(self, overrides: list[str]) -> ModelSpec | PeerSpec:
        """The model of `overrides` (a step, `model=swin_t`) as trained at this size."""
        cfg = compose([*overrides] + ([f"profile={self.profile}"] if self.profile else []))
        return run_spec(cfg, COST_CLASSES) if self.profile else model_spec(cfg)


def reference_sizes(args) -> list[Size]:
    sizes = []
    for entry in args.sizes:
        if entry.isdigit():
            sizes.append(Size(f"{entry} px", int(entry), args.batch))
        else:
            p = compose([f"profile={entry}"]).profile
            batch = 8 if args.quick else int(p.batch_size)
            sizes.append(Size(f"`{entry}` profile", int(p.resolution), batch, entry))
    return sizes


def thread_counts(args) -> list[int | None]:
    """Section 1 on a CPU: one thread (how two runs at a time train) and every core; --threads picks one count."""
    if args.device.type != "cpu":
        return [None]
    if args.threads or args.quick:
        return [args.threads or 1]
    return sorted({1, torch.get_num_threads()})


def reference_section(args) -> Section:
    out = new_section("1. Ours vs reference implementations, at every size we train",
                  "Each size: the model as it is trained there (a profile's width, resolution, batch, stem and "
                  "classes; the paper's model with 1000 classes at a resolution, batch "
                  f"{args.batch}), and a hand-written reference with the same dims and parameter count. Ours and the "
                  f"reference alternate (A B A B ...). img/s: median of {args.repeats} repeats. ratio: median of the "
                  "per-repeat ratios ours/reference; spread: their min..max. Target >= 1.0 within the spread.",
                  Column("size", "size", align="left"),
                  Column("threads", "threads", lambda r: str(r["threads"] or "-"), align="left"),
                  Column("model", "model", lambda r: f"{r['model']} (`{r['step']}`)", align="left"),
                  Column("params", "params (M)", ".2f", missing="-"), speed_column("ours", "ours img/s"),
                  Column("reference", "reference", align="left"), speed_column("reference_speed", "reference img/s"),
                  replace(RATIO, header="ours/reference"), RATIO_SPREAD)
    pairs = [("ResNet-50", "resnet50", resnet_reference), ("ConvNeXt-T", "separate_downsampling", convnext_reference)]
    for size in reference_sizes(args):
        specs = {step: size.spec(step) for _, step, _ in pairs}  # composed once, timed at every thread count
        for threads in thread_counts(args):
            with torch_threads(threads):
                for label, step, make_reference in pairs:
                    spec = specs[step]
                    row = {"size": size.label, "threads": threads, "model": label, "step": step}
                    try:
                        ref_label, ref = make_reference(spec)
                    except ImportError:
                        out.add({**row, "reference": "timm", "note": "timm not installed: skipped"})
                        continue
                    a, b = Trainer(build(spec), args), Trainer(ref, args)
                    if a.params_millions != b.params_millions:  # not the same model: the ratio would mean nothing
                        raise RuntimeError(f"{ref_label} has {b.params_millions:.6f}M parameters, ours "
                                           f"{a.params_millions:.6f}M at {size.label}")
                    x, y = a.batch(size.batch, size.resolution, spec.num_classes)  # one input for both
                    ra, rb = time_interleaved([bare_step(a, x, y), bare_step(b, x, y)], [size.batch] * 2, args)
                    out.add({**row, "params": a.params_millions, "ours": ra.median, "reference": ref_label,
                             "reference_speed": rb.median, **ratio_row(ra, rb)})
    return out


@contextlib.contextmanager
def torch_threads(count: int | None):
    """torch's thread count set to `count` (None: as it is) and restored after: main() may run in-process (tests)."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def roadmap_section(args) -> Section:
    out = new_section("2. Roadmap steps (ours)",
                  f"{args.resolution} px, batch {args.batch}, 1000 classes, full width. img/s: median of "
                  f"{args.repeats} repeats; spread: min..max.",
                  *STEP_COLUMNS, Column("params", "params (M)", ".1f", missing="-"), speed_column("speed", "img/s"),
                  spread_column(speed))
    for step in args.steps:
        trainer = Trainer(build_model(step), args)
        x, y = trainer.batch(args.batch, args.resolution, 1000)
        (r,) = time_interleaved([bare_step(trainer, x, y)], [args.batch], args)
        out.add({"number": STEPS.index(step), "step": step, "params": trainer.params_millions, "speed": r.median,
                 "lo": min(r.images_per_s), "hi": max(r.images_per_s)})
    return out


class InMemoryPipeline:
    """The per-step data work of `modernize.training.train` on an in-memory data set, built from a recipe exactly as the
    training loop builds it: index a uint8 TensorDataset on the device -> TrainAugment -> MixUp / CutMix.
    The images are random uint8 like data=synthetic, a few batches' worth, at the given size."""

    def __init__(self, recipe: DictConfig, resolution: int, batch: int, num_classes: int, device: torch.device):
        gen = torch.Generator().manual_seed(0)
        n = batch * 4
        dataset = datasets.TensorDataset(
            torch.randint(0, 256, (n, 3, resolution, resolution), dtype=torch.uint8, generator=gen),
            torch.randint(0, num_classes, (n,), generator=gen)).to(device)
        mean, std = datasets.MEAN_STD["synthetic"]
        self.augment, _ = build_augmentations(recipe, resolution=resolution, mean=mean, std=std,
                                              loader_transforms=False, device=device)
        self.mixing = make_mixing(recipe, num_classes)
        # The batch source of modernize.training.train itself, one epoch after another.
        source = InMemoryBatches(dataset, dataset, device, batch, Processes(), seed=0)
        self.batches = (b for epoch in itertools.count() for b in source.train_batches(epoch))

    def next_batch(self, trainer: Trainer) -> tuple[torch.Tensor, torch.Tensor]:
        return prepare_batch(*next(self.batches), self.augment, self.mixing, trainer.memory_format)

    def end_to_end_step(self, trainer: Trainer) -> Callable[[], None]:
        return lambda: trainer.step(*self.next_batch(trainer))


def pipeline_section(args) -> Section:
    """The per-step work of `modernize.training.train` on an in-memory data set vs the model step alone: with the recipe
    as the `cpu` profile trains it (its proxy rules), and with the paper's modern recipe at that size and at full
    width."""
    cfg = compose(["+step=separate_downsampling"])  # ConvNeXt-T, the modern recipe, the cpu profile
    r, p = cfg.recipe, cfg.profile
    num_classes, resolution, batch = 10, int(p.resolution), 8 if args.quick else int(p.batch_size)
    trained = OmegaConf.create(effective_recipe(cfg)[1])
    out = new_section("3. End-to-end vs bare model step (in-memory data)",
                  f"ConvNeXt-T at the `{p.name}` profile's {resolution} px and batch {batch}, {num_classes} "
                  "classes. end-to-end: index a uint8 TensorDataset on the device -> TrainAugment -> MixUp / CutMix "
                  "-> model step with label smoothing, with the recipe as the profile trains it (" +
                  describe_augmentation(trained) + ") and the paper's (" + describe_augmentation(r) + "). bare: the "
                  "model step on one pre-made normalized batch with mixed targets. Alternated; ratio: median of the "
                  "per-repeat ratios end-to-end/bare, spread: their min..max. Target >= 0.95 for the first row (what "
                  f"every `{p.name}` run pays).",
                  Column("model", "model", align="left"), Column("recipe", "recipe", align="left"), WIDTH,
                  Column("params", "params (M)", ".2f", missing="-"), speed_column("bare", "bare img/s"),
                  speed_column("end_to_end", "end-to-end img/s"), replace(RATIO, header="end-to-end/bare"),
                  RATIO_SPREAD)
    rows = [(f"as the `{p.name}` profile trains it", trained, run_spec(cfg, num_classes)),
            ("the paper's", r, run_spec(cfg, num_classes)),
            ("the paper's", r, model_spec(cfg, num_classes=num_classes))]  # full width
    for label, recipe, spec in rows:
        pipeline = InMemoryPipeline(recipe, resolution, batch, num_classes, args.device)
        trainer = Trainer(build(spec), args, recipe)
        x, y = pipeline.next_batch(trainer)  # the bare step's batch
        bare, e2e = time_interleaved([bare_step(trainer, x, y), pipeline.end_to_end_step(trainer)], [batch] * 2, args)
        out.add({"model": "ConvNeXt-T", "recipe": label, "width": spec.width_multiplier,
                 "params": trainer.params_millions, "bare": bare.median, "end_to_end": e2e.median,
                 **ratio_row(e2e, bare)})
    return out


def describe_augmentation(recipe) -> str:
    crop_scale, hflip = recipe_crop(recipe)
    crop = f"random resized crop {crop_scale}" if crop_scale else "resize and centre crop"
    ra = f"RandAugment {tuple(recipe.randaugment)}" if recipe.randaugment else "no RandAugment"
    return (f"{crop}, {'flip, ' if hflip else ''}{ra}, erasing {recipe.random_erasing:g}, "
            f"MixUp {recipe.mixup:g} / CutMix {recipe.cutmix:g}, smoothing {recipe.label_smoothing:g}")


# Fashion-MNIST, the data set every profile but `imagenet` is tabulated on: its training set (a profile's
# train_subset may take fewer) and classes.
COST_TRAIN_IMAGES, COST_CLASSES = 60_000, 10


def profile_cost_section(args) -> Section:
    """What one seed of a profile's roadmap costs on this device, before training it: each step's end-to-end
    training step (the in-memory pipeline above) at the profile's width, resolution, batch and stem, with the
    recipe as the profile trains it (modernize.training.proxy's epoch, regularization and crop rules), times its
    epochs."""
    name = args.profile
    subset = compose([f"profile={name}"]).profile.train_subset
    images = COST_TRAIN_IMAGES if subset is None else min(int(subset), COST_TRAIN_IMAGES)
    out = new_section(f"4. What one seed of the `{name}` profile's roadmap costs here",
                  f"Each step as `python run.py +step=<step> profile={name}` trains it on Fashion-MNIST "
                  f"({images:,} training images, {COST_CLASSES} classes): the profile's width, "
                  "resolution, batch and stem, the recipe after the profile's rules, the in-memory pipeline of "
                  "section 3, this process's precision and memory format. img/s: median of "
                  f"{args.repeats} repeats. training time = epochs x {images:,} / img/s, one run at a "
                  "time; evaluation, checkpoints and start-up are not counted. Each step is stepped with its own "
                  "recipe's optimizer, loss and schedule, built by the training loop's builder.",
                  *STEP_COLUMNS, WIDTH, Column("resolution", "resolution", "d", missing="-"),
                  Column("batch", "batch", "d", missing="-"), Column("params", "params (M)", ".2f", missing="-"),
                  Column("epochs", "epochs", "d", missing="-"), speed_column("speed", "img/s"),
                  Column("minutes", "training time (min)", ".1f", missing="-"))
    for step in args.steps:
        cfg = compose([f"+step={step}", f"profile={name}"])
        epochs, recipe = effective_recipe(cfg)
        recipe = OmegaConf.create(recipe)
        p = cfg.profile
        resolution = int(p.resolution)
        batch = 4 if args.quick else int(p.batch_size)
        pipeline = InMemoryPipeline(recipe, resolution, batch, COST_CLASSES, args.device)
        spec = run_spec(cfg, COST_CLASSES)
        trainer = Trainer(build(spec), args, recipe)
        (r,) = time_interleaved([pipeline.end_to_end_step(trainer)], [batch], args)
        out.add({"number": STEPS.index(step), "step": step, "width": spec.width_multiplier, "resolution": resolution,
                 "batch": batch, "params": trainer.params_millions, "epochs": epochs, "speed": r.median,
                 "minutes": epochs * images / r.median / 60})
    scope = "one seed of the roadmap" if list(args.steps) == list(STEPS) else f"these {len(args.steps)} steps"
    total = sum(r["minutes"] for r in out.rows)
    out.footer = ["", f"Training time of {scope} at the `{name}` profile, one run at a time: **{total:.1f} min**."]
    return out


def header(args) -> list[str]:
    try:
        import timm
        timm_version = timm.__version__
    except ImportError:
        timm_version = "not installed"
    cmd = shlex.join(["python", "-m", "modernize.bench", *args.argv])
    memory_format = "channels_last" if args.channels_last else "NCHW"
    return [f"# Training throughput on {device_name(args.device)}", "",
            f"- command: `{cmd}`",
            (f"- torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm_version}, "
             f"python {platform.python_version()}"),
            f"- device: {args.device.type} ({device_name(args.device)}), torch threads: {torch.get_num_threads()}",
            (f"- precision: {args.precision}, memory format: {memory_format}, "
             f"torch.compile: {'yes' if args.compile else 'no'}"),
            (f"- per model: {args.warmup} warm-up steps, then {args.repeats} timed repeats of "
             f"{args.steps_per_repeat} steps"),
            ("- a step: autocast forward, cross-entropy, backward, AdamW step (foreach on CPU, fused on CUDA), "
             "models in train mode; img/s = batch x steps / seconds"),
            f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", ""]


def write_jpegs(root: Path, images: int) -> None:
    """`images` photo-like 500x375 JPEGs in each of train/ and val/, four classes."""
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for i in range(images):
            folder = root / split / f"c{i % 4}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = torch.randint(0, 256, (375, 500, 3), dtype=torch.uint8, generator=generator)
            smooth = nn.functional.avg_pool2d(pixels.permute(2, 0, 1)[None].float(), 9, 1, 4)[0]  # photo-like
            Image.fromarray(smooth.to(torch.uint8).permute(1, 2, 0).numpy()).save(folder / f"{i}.jpg", quality=90)


def time_loader_passes(loaders: list, repeats: int) -> list[Result]:
    """Images/s of whole passes over each loader, alternated, after one untimed pass each (it starts the persistent
    workers and warms the page cache)."""
    passes = [lambda loader=loader: sum(len(labels) for _, labels in loader) for loader in loaders]
    for fn in passes:
        fn()
    results = [Result() for _ in loaders]
    for _ in range(repeats):
        for fn, result in zip(passes, results):
            start = time.perf_counter()
            n = fn()
            result.images_per_s.append(n / (time.perf_counter() - start))
    return results


def folder_section(args) -> Section:
    """What one DataLoader worker delivers at 224 px on ImageNet-sized JPEGs: ours against timm's own loader."""
    import tempfile

    from timm.data import ImageDataset, create_transform
    from torch.utils.data import DataLoader

    from modernize.data.augment import randaugment_policy, with_zero_bit_posterize

    images, batch = (16, 8) if args.quick else (192, 32)
    out = new_section("5. Folder data: one loader worker at 224 px",
                  f"{images} JPEGs of 500x375 px (ImageNet's typical size), batch {batch}, one worker process each "
                  "(the official code runs 10 per GPU). ours: `datasets.load_data('imagefolder', recipe=...)` and "
                  "`make_loader`, i.e. the recipe's `augment.folder_transforms` (timm's transforms, full decode to "
                  "RGB first); timm: `timm.data.ImageDataset` and a DataLoader with `timm.data.create_transform` "
                  "as the official datasets.py calls it. Alternated; img/s: median of the repeats (one pass over "
                  "the images each, workers started before timing).",
                  Column("recipe", "recipe", align="left"), Column("pipeline", "pipeline", align="left"),
                  speed_column("ours", "ours img/s"), speed_column("timm", "timm img/s"),
                  replace(RATIO, header="ours/timm"), RATIO_SPREAD)
    mean, std = datasets.MEAN_STD["imagefolder"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jpegs(root, images)
        for step, name in (("separate_downsampling", "modern"), ("resnet50", "original")):
            recipe = effective_recipe(compose([f"+step={step}", "profile=imagenet"]))[1]
            ours = datasets.load_data("imagefolder", root, resolution=224, recipe=recipe).train
            ra = recipe["randaugment"]
            timm_transform = create_transform(
                224, is_training=True, color_jitter=0.4 if ra else None,
                auto_augment=randaugment_policy(*ra) if ra else None, interpolation=recipe["interpolation"],
                re_prob=recipe["random_erasing"], re_mode=recipe["random_erasing_mode"], re_count=1, mean=mean,
                std=std)
            # Pillow >= 12 refuses timm's 0-bit posterize (docs/recipe.md): both sides get the official runs' op
            theirs = ImageDataset(str(root / "train"), transform=with_zero_bit_posterize(timm_transform))
            loaders = [datasets.make_loader(ours, batch, shuffle=True, workers=1, distributed=False, seed=0,
                                            drop_last=True),
                       DataLoader(theirs, batch_size=batch, shuffle=True, num_workers=1, persistent_workers=True,
                                  drop_last=True)]
            ours_speed, timm_speed = time_loader_passes(loaders, args.repeats)
            what = "timm RandAugment m9 inc1, bicubic, pixel erasing" if ra else "bilinear crop and flip"
            out.add({"recipe": name, "pipeline": what, "ours": ours_speed.median, "timm": timm_speed.median,
                     **ratio_row(ours_speed, timm_speed)})
    return out


# The paper's claim beside its Tables 1 and 2: ConvNeXt at least as fast as the transformer of the same FLOPs.
PEER_PAIRS = (("ConvNeXt-T", "convnext_t", "Swin-T", "swin_t"),
              ("ConvNeXt-S iso", "convnext_iso_s", "DeiT-S", "deit_s"))


def peers_section(args) -> Section:
    out = new_section("6. ConvNeXt vs the transformer beside it (the paper's Tables 1 and 2)",
                      "Each pair at a profile's training size (its width, resolution, batch and patch rules: "
                      "docs/peers.md) and as the paper's models at 224 px (batch "
                      f"{args.batch}). train: one training step (the training loop's builder, the modern recipe); "
                      "inference: a forward pass in eval mode without gradients. The two models alternate (A B A B "
                      f"...); img/s: median of {args.repeats} repeats; ratio: median of the per-repeat ratios "
                      "ConvNeXt/peer, spread: their min..max. The paper (V100, inference, 224 px): ConvNeXt-T 774.7 "
                      "vs Swin-T 757.9 img/s (1.02), isotropic ConvNeXt-S 1038.7 vs DeiT-S 978.5 (1.06).",
                      Column("size", "size", align="left"), Column("mode", "mode", align="left"),
                      Column("pair", "ConvNeXt / peer", align="left"),
                      Column("params", "params (M)", align="left"), speed_column("ours", "ConvNeXt img/s"),
                      speed_column("peer", "peer img/s"), replace(RATIO, header="ConvNeXt/peer"), RATIO_SPREAD)
    sizes = [s for s in reference_sizes(args) if s.profile or s.resolution == 224] or reference_sizes(args)
    for size in sizes:
        for label, convnext, peer_label, peer in PEER_PAIRS:
            specs = [size.spec_of([f"model={name}"]) for name in (convnext, peer)]
            trainers = [Trainer(build(spec), args) for spec in specs]
            x, y = trainers[0].batch(size.batch, size.resolution, specs[0].num_classes)
            row = {"size": size.label, "pair": f"{label} / {peer_label}",
                   "params": "/".join(f"{t.params_millions:.1f}" for t in trainers)}
            train = time_interleaved([bare_step(t, x, y) for t in trainers], [size.batch] * 2, args)
            out.add({**row, "mode": "train", "ours": train[0].median, "peer": train[1].median,
                     **ratio_row(*train)})
            inference = [copy.deepcopy(t.model).eval() for t in trainers]
            infer = time_interleaved([forward_only(model, x) for model in inference], [size.batch] * 2, args)
            out.add({**row, "mode": "inference", "ours": infer[0].median, "peer": infer[1].median,
                     **ratio_row(*infer)})
    return out


def forward_only(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad():
            model(x)
    return step


SECTIONS = {1: reference_section, 2: roadmap_section, 3: pipeline_section, 4: profile_cost_section,
            5: folder_section, 6: peers_section}


@dataclass
class Report:
    path: Path  # the markdown written
    sections: dict[int, Section]  # by number: each section's measured rows


def main(argv: list[str] | None = None) -> Path:
    return measure(argv).path


def measure(argv: list[str] | None = None) -> Report:
    """Run the chosen sections, write the markdown report and return it with the measured rows."""
    args = resolve(parse_args(argv))
    # --threads: one thread per *free* core; on a busy CPU, more threads than free cores make every parallel op wait
    # for a descheduled thread, and a step can get many times slower.
    with torch_threads(args.threads):
        return run(args)


def run(args) -> Report:
    if args.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as modernize.training.train: pick the fastest conv kernels
    torch.manual_seed(0)
    start = time.perf_counter()
    lines = header(args)
    print("\n".join(lines), flush=True)
    sections = {}
    for number in args.sections:
        sections[number] = SECTIONS[number](args)
        lines += sections[number].markdown() + [""]
    lines.append(f"Total bench time: {time.perf_counter() - start:.0f} s.")
    text = "\n".join(lines) + "\n"
    # A partial run (--sections) gets its own file, so it never overwrites the whole report.
    suffix = "" if args.sections == sorted(SECTIONS) else "-sections-" + "".join(map(str, args.sections))
    path = atomic_write_text(Path(args.out) / f"{device_slug(args.device)}{suffix}.md", text)
    print(f"\n{text}\nwrote {path}", flush=True)
    return Report(path, sections)


if __name__ == "__main__":
    main()
