"""A model's weights in the layouts of other libraries' own classes: timm's, the official ConvNeXt repository's and
torchvision's, each loading them with `strict=True` (the command is `python -m modernize.export`).

Each of those classes implements one of the roadmap's two endpoint designs and takes some of its fields as arguments:

| format      | class                                  | design     | takes as arguments                        |
|-------------|----------------------------------------|------------|-------------------------------------------|
| timm        | timm.models.convnext.ConvNeXt          | ConvNeXt-T | depths, widths, kernel, patch, layer scale |
| timm        | timm.models.resnet.ResNet (Bottleneck) | ResNet-50  | depths, widths (a stem of 64 channels)    |
| official    | models/convnext.py's ConvNeXt          | ConvNeXt-T | depths, widths, layer scale (7x7, 4x4)    |
| torchvision | torchvision.models.convnext.ConvNeXt   | ConvNeXt-T | depths, widths, a layer scale > 0 (7x7, 4x4) |
| torchvision | torchvision.models.resnet.ResNet       | ResNet-50  | depths (ResNet-50's widths)               |

All take the number of classes; all but torchvision's take the number of input channels.
A model fits a class when its spec equals that design once the class's arguments are taken from the model; otherwise
the export is refused with the fields that differ (e.g. `gelu` is ResNet-50 with block.activation=gelu, which
torchvision's ResNet cannot express). Which spec fields do not change what the weights compute (drop path, the init,
the class count) is `NOT_DESIGN`. timm's ResNet fixes its 7x7 stem at 64 channels (timm/models/resnet.py: `inplanes =
stem_width * 2 if deep_stem else 64`) and torchvision's every width, so a ResNet trained at a profile's width
(`profile=cpu`: x0.25) fits neither; safetensors holds every model.

The names are not a second set of renaming rules: the library class's own state dict is converted with the rules that
load checkpoints (modernize/design/weights.py), and each of its tensors is followed to the name it gets, which the
converters keep as the same storage (a rename, or a view for a reshape). Every export is checked before it is written:
the library class loads it with strict=True and gives our logits, and the file converts back to our exact weights
(what task=eval and hubconf.py read).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .model import Network
from .preprocessing import Preprocessing, RecordError, preprocessing_from_dict
from .spec import ModelSpec, model_spec_from_dict
from .weights import convert, load_pretrained

FORMATS = ("timm", "official", "torchvision", "safetensors", "pt2", "onnx")
# Spec fields that do not change what a trained model's weights compute: training-only (stochastic depth, the
# initialisation), the head's size (a state dict's shapes say it), or the width multiplier (widths are compared after
# it). A profile sets some of them (modernize/training/proxy.py scale_model).
NOT_DESIGN = ("drop_path_rate", "init", "num_classes", "width_multiplier")
CARD_KEY = "modernize_card"  # the model card inside a safetensors file's metadata
# The card's format: 2 adds `preprocessing` (modernize.design.preprocessing) in place of `eval_transform`, and
# `num_classes`; a reader refuses a card newer than it knows.
CARD_VERSION = 2
OUTPUT_TOLERANCE = 1e-4  # relative to the logits' scale: the library class and ours sum in other orders


class ExportError(ValueError):
    """The model cannot be written in the format asked for (one line, saying why and what can)."""


def design_of(spec: ModelSpec) -> dict[str, Any]:
    """The spec as flat {field: value} (block.kernel_size, stem.kind, ...), widths as built, without NOT_DESIGN."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                walk(f"{prefix}{f.name}.", getattr(value, f.name))
        else:
            flat[prefix[:-1]] = list(value) if isinstance(value, tuple) else value

    walk("", spec)
    flat["widths"] = list(spec.scaled_widths())
    for name in NOT_DESIGN:
        flat.pop(name)
    return flat


def design_differences(spec: ModelSpec, design: ModelSpec, arguments: tuple[str, ...] = ()) -> list[str]:
    """The fields in which `spec` is not `design`, the `arguments` taken from `spec`: ["block.activation=gelu
    (relu)", ...]."""
    ours, theirs = design_of(spec), design_of(design)
    return [f"{name}={ours[name]} ({theirs[name]})" for name in ours
            if name not in arguments and ours[name] != theirs[name]]


# What a profile changes in a step's spec besides NOT_DESIGN (modernize/training/proxy.py scale_model): a run's model
# is its step's at the profile's width, layer-scale init and stem stride.
PROFILE_FIELDS = ("block.layer_scale_init", "stem.stride_divisor")


def profile_differences(trained: ModelSpec, step: ModelSpec) -> list[str]:
    """How a run's spec (as a profile trained it) differs from a step's design, the profile's own changes aside:
    [] when the run is a run of that step. A transformer of the paper's tables is its timm model at any size."""
    if not isinstance(trained, ModelSpec) or not isinstance(step, ModelSpec):
        names = [getattr(spec, "timm", None) or f"a ConvNet ({getattr(spec, 'name', '')})" for spec in (trained, step)]
        return [] if names[0] == names[1] else [f"model={names[1]} ({names[0]})"]
    return design_differences(dataclasses.replace(trained, width_multiplier=1.0),
                              dataclasses.replace(step, width_multiplier=1.0), PROFILE_FIELDS)


@lru_cache(maxsize=None)
def endpoint(name: str) -> ModelSpec:
    """ResNet-50's or ConvNeXt-T's spec, as conf/model composes it."""
    from .config import compose, model_spec

    return model_spec(compose([f"model={name}"]))


# --------------------------------------------------------------------------------------------------
# The library classes
# --------------------------------------------------------------------------------------------------


def _no_limits(spec: ModelSpec) -> list[str]:
    return []


@dataclass(frozen=True)
class Target:
    """A library class that can hold a design of the roadmap."""

    format: str
    name: str  # the class, as a user finds it
    design: str  # the model config whose design the class implements: resnet50 or convnext_t
    arguments: tuple[str, ...]  # design fields the class takes as arguments (design_of's names)
    construct: Callable[[ModelSpec], str]  # Python that builds the class for a spec, as `model`
    limits: Callable[[ModelSpec], list[str]] = _no_limits  # argument values the class cannot take
    file_layout: Callable[[dict[str, torch.Tensor]], Any] | None = None  # the file's contents from the class's keys
    usage: Callable[[ModelSpec, str], str] | None = None  # how to load the file, where not construct + load_state_dict

    def differences(self, spec: ModelSpec) -> list[str]:
        return design_differences(spec, endpoint(self.design), self.arguments) + self.limits(spec)

    def build(self, spec: ModelSpec) -> nn.Module:
        namespace: dict[str, Any] = {"torch": torch}
        exec(self.construct(spec), namespace)  # the card's own code (made from the spec's numbers) is what is checked
        return namespace["model"]

    def load_code(self, spec: ModelSpec, file: str) -> str:
        """Python that loads the exported file into the library class, as the model card gives it."""
        if self.usage is not None:
            return self.usage(spec, file)
        if file.endswith(".safetensors"):
            return (f"from safetensors.torch import load_file\n{self.construct(spec)}\n"
                    f"model.load_state_dict(load_file({file!r}), strict=True)")
        return (f"import torch\n{self.construct(spec)}\n"
                f"model.load_state_dict(torch.load({file!r}, map_location='cpu', weights_only=True), strict=True)")


def _convnext_arguments(spec: ModelSpec) -> str:
    return f"depths={list(spec.depths)}, dims={list(spec.scaled_widths())}"


def _timm_convnext(spec: ModelSpec) -> str:
    layer_scale = spec.block.layer_scale_init or None  # None: timm builds no gamma, as our 0 builds none
    return ("from timm.models.convnext import ConvNeXt\n"
            f"model = ConvNeXt({_convnext_arguments(spec)}, kernel_sizes={spec.block.kernel_size}, "
            f"ls_init_value={layer_scale!r}, patch_size={spec.stem.patch_size}, in_chans={spec.in_chans}, "
            f"num_classes={spec.num_classes})")


def _timm_resnet(spec: ModelSpec) -> str:
    return ("from timm.models.resnet import Bottleneck, ResNet\n"
            f"model = ResNet(Bottleneck, layers={list(spec.depths)}, channels={list(spec.scaled_widths())}, "
            f"in_chans={spec.in_chans}, num_classes={spec.num_classes})")


def _torchvision_convnext(spec: ModelSpec) -> str:
    widths, depths = spec.scaled_widths(), spec.depths
    stages = ", ".join(f"CNBlockConfig({w}, {widths[i + 1] if i + 1 < len(widths) else None}, {d})"
                       for i, (w, d) in enumerate(zip(widths, depths)))
    return ("from torchvision.models.convnext import CNBlockConfig, ConvNeXt\n"
            f"model = ConvNeXt([{stages}], layer_scale={spec.block.layer_scale_init!r}, "
            f"num_classes={spec.num_classes})")


def _torchvision_resnet(spec: ModelSpec) -> str:
    return ("from torchvision.models.resnet import Bottleneck, ResNet\n"
            f"model = ResNet(Bottleneck, {list(spec.depths)}, num_classes={spec.num_classes})")


def _official_usage(spec: ModelSpec, file: str) -> str:
    """The official class is not a package (models/convnext.py of the facebookresearch/ConvNeXt repository, whose
    `ConvNeXt(in_chans, num_classes, depths, dims, layer_scale_init_value=...)` loads the file's 'model' as it is), so
    the card loads it the way timm reads the official checkpoints: its ConvNeXt at the run's width and classes, through
    timm's own converter of the official layout (checkpoint_filter_fn)."""
    return ("import torch\n"
            "from timm.models.convnext import checkpoint_filter_fn  # timm's reader of the official checkpoints\n"
            f"{_timm_convnext(spec)}\n"
            f"official = torch.load({file!r}, map_location='cpu', weights_only=True)  # {{'model': state dict}}, as "
            f"the official repository's models/convnext.py ConvNeXt(in_chans={spec.in_chans}, "
            f"num_classes={spec.num_classes}, {_convnext_arguments(spec)}, "
            f"layer_scale_init_value={spec.block.layer_scale_init!r}) loads it\n"
            "model.load_state_dict(checkpoint_filter_fn(official, model), strict=True)")


def timm_to_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's ConvNeXt keys -> the official repository's (models/convnext.py of facebookresearch/ConvNeXt):
    downsample_layers[0] = (Conv2d 4x4/4, LayerNorm) is the stem, downsample_layers[i] = (LayerNorm, Conv2d 2x2/2) for
    i = 1..3, stages[i][j] the blocks (dwconv, norm, pwconv1, pwconv2: nn.Linear, gamma), `norm` the LayerNorm after
    pooling and `head` the classifier. The inverse of timm's checkpoint_filter_fn, which reads official files."""
    out = {}
    for key, value in state_dict.items():
        key = re.sub(r"^stem\.", "downsample_layers.0.", key)
        key = re.sub(r"^stages\.(\d+)\.downsample\.", r"downsample_layers.\1.", key)
        key = re.sub(r"^stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.\2.", key)
        key = key.replace(".conv_dw.", ".dwconv.").replace(".mlp.fc", ".pwconv")
        out[key.replace("head.norm.", "norm.").replace("head.fc.", "head.")] = value
    return out


def _fixed(spec: ModelSpec, name: str, kernel: bool = True, channels: bool = False,
           layer_scale: bool = False) -> list[str]:
    """What a class that hard-codes ConvNeXt-T's 7x7 kernel and 4x4 patch (and RGB input, a layer scale) cannot take."""
    limits = []
    if kernel and spec.block.kernel_size != 7:
        limits.append(f"block.kernel_size={spec.block.kernel_size} ({name} fixes 7)")
    if kernel and spec.stem.patch_size != 4:
        limits.append(f"stem.patch_size={spec.stem.patch_size} ({name} fixes 4)")
    if channels and spec.in_chans != 3:
        limits.append(f"in_chans={spec.in_chans} ({name} fixes 3)")
    if layer_scale and spec.block.layer_scale_init <= 0:
        limits.append(f"block.layer_scale_init={spec.block.layer_scale_init} ({name} always has a layer scale)")
    return limits


def _timm_resnet_stem(spec: ModelSpec) -> list[str]:
    stem = spec.stem_width()
    return [] if stem == 64 else [f"widths[0]={stem} (timm's ResNet fixes its 7x7 stem at 64 channels, which here is "
                                  f"the first stage's width)"]


# the official and torchvision's classes take kernel and patch too, limited to 7 and 4 (_fixed): the refusal then says
# "fixes 7" rather than "(7)"
CONVNEXT_ARGUMENTS = ("depths", "widths", "block.layer_scale_init", "in_chans", "block.kernel_size", "stem.patch_size")
TARGETS: dict[str, tuple[Target, ...]] = {
    "timm": (
        Target("timm", "timm's ConvNeXt", "convnext_t", CONVNEXT_ARGUMENTS, _timm_convnext),
        Target("timm", "timm's ResNet", "resnet50", ("depths", "widths", "in_chans"), _timm_resnet,
               limits=_timm_resnet_stem),
    ),
    "official": (
        # checked through timm's ConvNeXt, the same model, which the official class is not installable beside
        Target("official", "the official ConvNeXt", "convnext_t", CONVNEXT_ARGUMENTS, _timm_convnext,
               limits=lambda s: _fixed(s, "the official ConvNeXt"),
               file_layout=lambda sd: {"model": timm_to_official(sd)}, usage=_official_usage),
    ),
    "torchvision": (
        Target("torchvision", "torchvision's ConvNeXt", "convnext_t", CONVNEXT_ARGUMENTS, _torchvision_convnext,
               limits=lambda s: _fixed(s, "torchvision's ConvNeXt", channels=True, layer_scale=True)),
        Target("torchvision", "torchvision's ResNet", "resnet50", ("depths", "in_chans"), _torchvision_resnet,
               limits=lambda s: _fixed(s, "torchvision's ResNet", kernel=False, channels=True)),
    ),
}


def target_for(spec: ModelSpec, fmt: str, label: str = "this model") -> Target:
    """The class of `fmt` that holds the spec; ExportError naming what no class of the format can take."""
    if fmt not in TARGETS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    misses = []
    for target in TARGETS[fmt]:
        differences = target.differences(spec)
        if not differences:
            return target
        misses.append((len(differences), target, differences))
    _, closest, differences = min(misses, key=lambda m: m[0])
    holds = [f"{t.format} ({t.name})" for t in fitting_formats(spec)]
    raise ExportError(
        f"--format {fmt} cannot hold {label}: it differs from {closest.name}'s design ({closest.design}'s) in "
        f"{'; '.join(differences[:4])}{f' ({len(differences)} fields in all)' if len(differences) > 4 else ''}; "
        f"formats that hold it: "
        f"{', '.join(holds + ['safetensors'])}")


def fitting_formats(spec: ModelSpec) -> list[Target]:
    return [t for targets in TARGETS.values() for t in targets if not t.differences(spec)]


# --------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------


def their_state_dict(ours: Mapping[str, torch.Tensor], reference: nn.Module) -> dict[str, torch.Tensor]:
    """Our weights under the reference class's names and shapes. The class's own state dict is converted with the
    checkpoint converters; each converted tensor is the class's tensor (or a view of it), so its storage names it."""
    theirs = reference.state_dict()
    name_of = {tensor.data_ptr(): name for name, tensor in theirs.items()}
    converted, _ = convert(theirs)
    if set(converted) != set(ours):  # the design check let through a model the class does not hold
        lacks, adds = sorted(set(ours) - set(converted)), sorted(set(converted) - set(ours))
        raise ExportError(f"{type(reference).__name__} lacks our {lacks[:4]} and has {adds[:4]} that we lack; this is "
                          f"a bug in modernize.design.export's design check")
    out = {}
    for key, view in converted.items():
        name = name_of[view.data_ptr()]
        out[name] = ours[key].reshape(theirs[name].shape).clone()
    return out


def check_same_logits(model: Network, reference: nn.Module, resolution: int, what: str) -> None:
    """The library class with the exported weights gives our logits (eval mode) on a fixed random batch."""
    images = torch.randn(2, model.spec.in_chans, resolution, resolution, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        check_close(model.eval()(images), reference.eval()(images), f"{what} loaded the weights but")


def export_weights(model: Network, fmt: str, resolution: int, label: str = "this model"
                   ) -> tuple[Any, Target | None]:
    """What to write for `model` in `fmt` (a state dict, or the official {"model": ...}), and the class that loads
    it (None for safetensors: our own layout). Checked as the module docstring says before it is returned."""
    ours = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    if fmt == "safetensors":
        return ours, None
    target = target_for(model.spec, fmt, label)
    reference = target.build(model.spec)
    state = their_state_dict(ours, reference)
    reference.load_state_dict(state, strict=True)
    check_same_logits(model, reference, resolution, target.name)
    contents = target.file_layout(state) if target.file_layout else state
    read_back = Network(model.spec)
    load_pretrained(read_back, contents)
    if any(not torch.equal(read_back.state_dict()[k], v) for k, v in ours.items()):
        raise ExportError(f"the {fmt} file does not convert back to the same weights; this is a bug in "
                          f"modernize.design.export")
    return contents, target


# --------------------------------------------------------------------------------------------------
# Programs: the model as a graph, loaded without any model code
# --------------------------------------------------------------------------------------------------


def example_input(preprocessing: Preprocessing, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, *preprocessing.input_size, generator=torch.Generator().manual_seed(0))


@dataclass(frozen=True)
class Program:
    """A format that holds the model's computation itself (any step, any width): torch.export's .pt2, ONNX."""

    format: str
    name: str
    modules: tuple[str, ...]  # what writing it imports (onnx: the optional extra)
    install: str
    save: Callable[[nn.Module, torch.Tensor, str, str], None]  # (model, example, path, card JSON)
    run: Callable[[str, torch.Tensor], torch.Tensor]  # the written file's logits, as its reader computes them
    usage: str  # the card's Python, {file} for the file's name

    def check_installed(self) -> None:
        import importlib.util

        missing = [m for m in self.modules if importlib.util.find_spec(m) is None]
        if missing:
            raise ExportError(f"--format {self.format} needs {', '.join(missing)}, which is not installed: "
                              f"{self.install}")

    def load_code(self, file: str) -> str:
        return self.usage.format(file=file)

    def write(self, model: Network, preprocessing: Preprocessing, out: Path, card: str) -> Path:
        """Write the program atomically, after its reader gives our logits on a batch size it was not traced at."""
        from ..io import atomic_write

        model = model.eval()
        example = example_input(preprocessing)

        def write(tmp: str) -> None:
            self.save(model, example, tmp, card)
            check = example_input(preprocessing, batch=3)
            with torch.no_grad():
                check_close(model(check), self.run(tmp, check), f"the {self.format} file")
        return atomic_write(out, write)


def check_close(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    """Their logits are ours within OUTPUT_TOLERANCE of the logits' scale; ExportError saying `what` otherwise."""
    scale = max(1.0, float(ours.abs().max()))
    if ours.shape != theirs.shape or (ours - theirs).abs().max() > OUTPUT_TOLERANCE * scale:
        difference = f"{(ours - theirs).abs().max():.3g}" if ours.shape == theirs.shape else \
            f"shape {tuple(theirs.shape)} vs {tuple(ours.shape)}"
        raise ExportError(f"{what} does not compute our model (logits differ by {difference}); this is a bug in "
                          f"modernize.design.export")


BATCH = "batch"  # the programs' one dynamic dimension


def _save_pt2(model: nn.Module, example: torch.Tensor, path: str, card: str) -> None:
    program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim(BATCH)},))
    with open(path, "wb") as f:  # a file object: the atomic write's temporary name does not end in .pt2
        torch.export.save(program, f, extra_files={f"{CARD_KEY}.json": card})


def _run_pt2(path: str, x: torch.Tensor) -> torch.Tensor:
    with open(path, "rb") as f, torch.no_grad():
        return torch.export.load(f).module()(x)


def _save_onnx(model: nn.Module, example: torch.Tensor, path: str, card: str) -> None:
    import onnx

    with torch.no_grad():
        program = torch.onnx.export(model, (example,), input_names=["images"], output_names=["logits"],
                                    dynamic_shapes=({0: torch.export.Dim(BATCH)},), dynamo=True, verbose=False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {CARD_KEY: card})
    onnx.save(proto, path)


def _run_onnx(path: str, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


PROGRAMS: dict[str, Program] = {
    "pt2": Program("pt2", "torch.export's ExportedProgram", ("torch",), "", _save_pt2, _run_pt2,
                   "import torch\nmodel = torch.export.load({file!r}).module()  # torch alone: no model code"),
    "onnx": Program("onnx", "an ONNX graph", ("onnx", "onnxscript", "onnxruntime"),
                    "pip install 'modernize[onnx]' (onnx, onnxscript, onnxruntime)", _save_onnx, _run_onnx,
                    "import onnxruntime\nsession = onnxruntime.InferenceSession({file!r})\n"
                    "logits = session.run(None, {{'images': images.numpy()}})[0]  # images: float32 [N, C, H, W]"),
}


# --------------------------------------------------------------------------------------------------
# Reading exported files back
# --------------------------------------------------------------------------------------------------


def card_of(path: Path) -> dict[str, Any] | None:
    """The model card of an exported file: in a safetensors file's metadata, else the .json beside the file that
    names it; None for any other file."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            text = (f.metadata() or {}).get(CARD_KEY)
        if text:
            return check_card_version(json.loads(text), path)
    beside = path.with_suffix(".json")
    if beside.is_file():
        try:
            card = json.loads(beside.read_text())
        except (OSError, ValueError):
            return None
        if isinstance(card, dict) and card.get("file") == path.name:
            return check_card_version(card, path)
    return None


def spec_of_card(card: Mapping[str, Any], **fields: Any) -> ModelSpec:
    """The spec the card records (as trained), with `fields` (num_classes, drop_path_rate, ...) set."""
    return dataclasses.replace(model_spec_from_dict(card["spec"]), **fields)


def preprocessing_of_card(card: Mapping[str, Any]) -> Preprocessing:
    """The preprocessing the card records; cards of version 1 held it as `eval_transform` (resolution, mean, std,
    interpolation, crop_pct, for three input channels)."""
    where = f"the model card of {card.get('file', 'this file')}"
    if "preprocessing" in card:
        return preprocessing_from_dict(card["preprocessing"], where)
    old = card.get("eval_transform")
    if not isinstance(old, Mapping) or "resolution" not in old:
        raise RecordError(f"{where} records no preprocessing (neither 'preprocessing' nor 'eval_transform')")
    size = int(old["resolution"])
    return preprocessing_from_dict({"input_size": [card["spec"].get("in_chans", 3), size, size],
                                    **{k: old[k] for k in ("mean", "std", "interpolation", "crop_pct")}}, where)


def check_card_version(card: Mapping[str, Any], path: Path) -> Mapping[str, Any]:
    version = card.get("card_version", 1)
    if not isinstance(version, int) or version > CARD_VERSION:
        raise RecordError(f"{path}: its model card is of format version {version!r}, newer than this modernize reads "
                          f"({CARD_VERSION}); update modernize")
    if not isinstance(card.get("spec"), Mapping):
        raise RecordError(f"{path}: its model card holds no spec")
    return card
