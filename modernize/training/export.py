"""python -m modernize.export <run dir> --format timm|official|torchvision|safetensors|pt2|onnx [--ema | --no-ema]
[--out FILE]:
a finished run's weights in a file other code loads without this package, and a JSON model card beside it.

    python -m modernize.export experiments/runs/roadmap-gpu-imagenet/separate_downsampling-seed0 --format timm

- timm / official / torchvision: the state dict of that library's own class (modernize.design.export says which
  class holds which step), loaded with strict=True; the card's `load.python` is the code that does it, and it ran
  before the file was written. A step no class of the format can hold is refused in one line, naming what differs.
- safetensors: every step, in modernize's own layout, the card also inside the file's metadata, so
  `torch.hub.load(<checkout>, "exported", source="local", weights=FILE)` rebuilds the model from the file alone.
  `--out FILE.safetensors` writes timm's or torchvision's state dict as safetensors too (the official layout,
  {"model": ...}, stays a .pth).
- pt2 / onnx: the model's computation itself, every step at any width: torch.export's program (loaded with torch
  alone, `torch.export.load(f).module()`), or an ONNX graph (the `onnx` extra; checked through onnxruntime).

The weights are the EMA's where the run kept one (--no-ema: the model's own; --ema: refuse a run without one), read
from weights.pt (logger.wandb.log_weights) or the run's last.pt. The card says what the weights are: step, spec,
config hash, recipe, data, profile, epochs, top-1 and EMA top-1, the commit, and the preprocessing they expect
(modernize/design/preprocessing.py), with the Python that loads the file and makes its transform, as written.
task=eval (eval.weights=FILE) and hubconf.py read every exported file back.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..design.export import CARD_KEY, CARD_VERSION, FORMATS, PROGRAMS, ExportError, Target, export_weights
from ..design.preprocessing import RecordError
from ..design.weights import WeightsError, read_weights
from ..design.spec import spec_as_dict
from ..design.model import build
from ..design.peers import PeerSpec
from ..io import WriteError, atomic_write, atomic_write_json
from .record import WeightsRecord, record_of, weights_in
from .runs import read_run

PEER_FORMATS = ("timm", "pt2", "onnx")  # a transformer of the paper's tables is timm's class: no other layout
SUFFIX = {"safetensors": ".safetensors", "pt2": ".pt2", "onnx": ".onnx"}  # the others: torch.save's .pth, as the
# libraries publish theirs


def run_weights(run_dir: Path, ema: bool | None) -> tuple[nn.Module, dict[str, Any], str, WeightsRecord]:
    """The finished run's model with its weights in it (the EMA's unless `ema` is False), its summary, which weights
    ("ema" or "model") and its record. ExportError (one line) for anything that is not a finished run's folder."""
    if not (run_dir / "config.yaml").is_file():
        raise ExportError(f"{run_dir} is not a run folder (no config.yaml): pass the folder of one run, e.g. "
                          f"experiments/runs/<sweep>/<label>-seed0")
    result = read_run(run_dir)
    if result is None or result["status"] != "ok":
        why = (result or {}).get("error") or "it has no summary.json yet"
        raise ExportError(f"{run_dir} is not a finished run ({(result or {}).get('status', 'empty')}: {why}); "
                          f"export a run that finished")
    try:
        path = weights_in(run_dir)
        state, which = read_weights(path, "auto" if ema is None else ema, setting="weights", ema_setting="--ema")
        record = record_of(path, state)
    except (WeightsError, RecordError) as e:
        raise ExportError(str(e)) from None
    model = build(record.spec)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ExportError(f"{path} does not fit the run's own model ({record.label}): "
                          f"{' '.join(str(e).split())[:200]}") from None
    return model, result, which, record


def model_card(fmt: str, file: str, model: nn.Module, result: dict, which: str, record: WeightsRecord,
               target: Target | None) -> dict[str, Any]:
    """What the weights are and how to use them: the run's identity and results, its spec, the preprocessing it
    expects, and Python that loads the file (and makes its transform) as written."""
    preprocessing = record.preprocessing
    if fmt in PROGRAMS:
        load = {"library": "torch", "class": PROGRAMS[fmt].name, "python": PROGRAMS[fmt].load_code(file)}
    elif isinstance(record.spec, PeerSpec):  # timm's own class: its own state dict, no conversion
        arguments = ", ".join(f"{k}={v!r}" for k, v in record.spec.timm_kwargs().items() if k != "drop_path_rate")
        load = {"library": "timm", "class": type(model).__name__,
                "python": "import timm\nimport torch\n"
                          f"model = timm.create_model({record.spec.timm!r}, pretrained=False, {arguments})\n"
                          f"model.load_state_dict(torch.load({file!r}, map_location='cpu', weights_only=True))\n"
                          "model.eval()"}
    elif target is not None:
        load = {"library": target.format, "class": target.name, "python": target.load_code(model.spec, file)}
    else:
        load = {"library": "modernize", "class": "modernize.design.model.Network",
                "python": "import torch\n"
                          f"model = torch.hub.load('<modernize checkout>', 'exported', source='local', "
                          f"weights={file!r})"}
    timm_cfg = preprocessing.timm_cfg()
    load["transform_python"] = ("from timm.data import create_transform\n"
                                f"transform = create_transform({', '.join(f'{k}={v!r}' for k, v in timm_cfg.items())})"
                                "  # PIL image -> the tensor the model takes")
    return {
        "card_version": CARD_VERSION, "format": fmt, "file": file, "step": result["label"], "seed": result["seed"],
        "weights": which, "spec": spec_as_dict(record.spec), "num_classes": record.spec.num_classes,
        "config_hash": result.get("config_hash"), "recipe": result.get("recipe"), "data": record.data.get("name"),
        "data_root": record.data.get("root"), "profile": result.get("profile"), "epochs": result.get("epochs"),
        "top1": result.get("final_top1"), "ema_top1": result.get("ema_final_top1"),
        "commit": result.get("git_commit"),
        # what the model expects of an image (modernize/design/preprocessing.py), in timm's pretrained_cfg terms
        "preprocessing": preprocessing.as_dict(),
        "load": load,
    }


def export_run(run_dir: Path, fmt: str, ema: bool | None = None, out: Path | None = None) -> tuple[Path, Path]:
    """Write the run's weights in `fmt` and the model card (.json beside them); returns both paths."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if fmt in PROGRAMS:
        PROGRAMS[fmt].check_installed()
    if out is not None:
        check_out(out, fmt)
    model, result, which, record = run_weights(run_dir, ema)
    if isinstance(record.spec, PeerSpec) and fmt not in PEER_FORMATS:
        raise ExportError(f"{run_dir} is a run of {record.spec.name}, timm's own {type(model).__name__}: its weights "
                          f"need no conversion; --format {' or '.join(PEER_FORMATS)}")
    label = f"{result['label']} ({run_dir.name})"
    out = out or run_dir / "export" / f"{run_dir.name}-{fmt}-{which}{SUFFIX.get(fmt, '.pth')}"
    if fmt in PROGRAMS:
        card = model_card(fmt, out.name, model, result, which, record, None)
        PROGRAMS[fmt].write(model, record.preprocessing, out, json.dumps(card))
        return out, atomic_write_json(out.with_suffix(".json"), card)
    if isinstance(record.spec, PeerSpec):
        contents, target = {k: v.detach().contiguous() for k, v in model.state_dict().items()}, None
    else:
        contents, target = export_weights(model, fmt, record.preprocessing.resolution, label)
    card = model_card(fmt, out.name, model, result, which, record, target)
    if out.suffix == ".safetensors":  # timm's and torchvision's state dicts may go into one too, card inside
        from safetensors.torch import save_file

        atomic_write(out, lambda tmp: save_file(contents, tmp, metadata={CARD_KEY: json.dumps(card)}))
    else:
        atomic_write(out, lambda tmp: torch.save(contents, tmp))
    return out, atomic_write_json(out.with_suffix(".json"), card)


def check_out(out: Path, fmt: str) -> None:
    """An --out name the format can be written under, before any work: a .safetensors file holds one flat state dict
    (not the official {"model": ...}); .json is the card's."""
    if out.suffix == ".json":
        raise ExportError(f"--out {out}: .json is the model card's name beside the weights; name the weights file")
    if fmt in SUFFIX and out.suffix != SUFFIX[fmt]:
        raise ExportError(f"--out {out}: --format {fmt} writes a {SUFFIX[fmt]} file; name it FILE{SUFFIX[fmt]}")
    if fmt == "official" and out.suffix == ".safetensors":
        raise ExportError(f"--out {out}: the official layout is {{'model': state dict}}, which safetensors cannot "
                          f"hold; name it FILE.pth")


def export_arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modernize.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="one run's folder (config.yaml, summary.json, last.pt)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="whose layout the file has")
    parser.add_argument("--ema", action=argparse.BooleanOptionalAction, default=None,
                        help="the EMA's weights (default: where the run has an EMA) or, with --no-ema, the model's")
    parser.add_argument("--out", type=Path, default=None,
                        help="the weights file (default: <run dir>/export/<run>-<format>-<ema|model>.pth or "
                             ".safetensors); the model card is written beside it as .json")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = export_arguments().parse_args(argv)
    try:
        weights, card = export_run(args.run_dir, args.format, args.ema, args.out)
    except (ExportError, WriteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    details = json.loads(card.read_text())
    print(f"wrote {weights} ({details['weights']} weights of {details['step']}, {details['load']['class']}) and "
          f"its model card {card}")
    return 0
