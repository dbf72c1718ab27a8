"""python -m modernize.export <run dir> --format timm|official|torchvision|safetensors [--ema | --no-ema] [--out FILE]:
a finished run's weights in a file other code loads without this package, and a JSON model card beside it.

    python -m modernize.export experiments/runs/roadmap-gpu-imagenet/separate_downsampling-seed0 --format timm

- timm / official / torchvision: the state dict of that library's own class (modernize.design.export says which
  class holds which step), loaded with strict=True; the card's `load.python` is the code that does it, and it ran
  before the file was written. A step no class of the format can hold is refused in one line, naming what differs.
- safetensors: every step, in modernize's own layout, the card also inside the file's metadata, so
  `torch.hub.load(<checkout>, "exported", source="local", weights=FILE)` rebuilds the model from the file alone.
  `--out FILE.safetensors` writes timm's or torchvision's state dict as safetensors too (the official layout,
  {"model": ...}, stays a .pth).

The weights are the EMA's where the run kept one (--no-ema: the model's own; --ema: refuse a run without one), read
from weights.pt (logger.wandb.log_weights) or the run's last.pt. The card says what the weights are: step, spec,
config hash, recipe, data, profile, epochs, top-1 and EMA top-1, the commit, and the eval transform they expect.
task=eval (eval.weights=FILE) and hubconf.py read every exported file back.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from ..data import datasets
from ..data.augment import EVAL_CROP_PCT
from ..design.config import run_label_of
from ..design.export import CARD_KEY, FORMATS, ExportError, Target, export_weights
from ..design.spec import spec_as_dict
from ..design.model import Network, build
from ..io import WriteError, atomic_write, atomic_write_json
from ..training.evaluation import read_weights
from ..training.proxy import run_spec
from ..training.runtime import RunError
from .runs import read_run

WEIGHT_FILES = ("weights.pt", "last.pt")  # the final weights alone; else the resumable checkpoint
SUFFIX = {"safetensors": ".safetensors"}  # every other format: torch.save's .pth, as the libraries publish theirs


def run_weights(run_dir: Path, ema: bool | None) -> tuple[Network, dict[str, Any], str, Any]:
    """The finished run's model with its weights in it (the EMA's unless `ema` is False), its summary, which weights
    ("ema" or "model") and its config. ExportError (one line) for anything that is not a finished run's folder."""
    if not (run_dir / "config.yaml").is_file():
        raise ExportError(f"{run_dir} is not a run folder (no config.yaml): pass the folder of one run, e.g. "
                          f"experiments/runs/<sweep>/<label>-seed0")
    result = read_run(run_dir)
    if result is None or result["status"] != "ok":
        why = (result or {}).get("error") or "it has no summary.json yet"
        raise ExportError(f"{run_dir} is not a finished run ({(result or {}).get('status', 'empty')}: {why}); "
                          f"export a run that finished")
    path = next((run_dir / name for name in WEIGHT_FILES if (run_dir / name).is_file()), None)
    if path is None:
        raise ExportError(f"{run_dir} holds no weights (neither {' nor '.join(WEIGHT_FILES)}): the run's checkpoint "
                          f"was removed or the folder was copied without it")
    try:
        state, which = read_weights(path, "auto" if ema is None else ema, setting="weights", ema_setting="--ema")
    except RunError as e:
        raise ExportError(str(e)) from None
    cfg = OmegaConf.load(run_dir / "config.yaml")
    classes = state.get("head.fc.weight")
    model = build(run_spec(cfg, int(classes.shape[0]) if classes is not None else int(cfg.model.num_classes)))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ExportError(f"{path} does not fit the run's own model ({run_label_of(cfg)}): "
                          f"{' '.join(str(e).split())[:200]}") from None
    return model, result, which, cfg


def model_card(fmt: str, file: str, model: Network, result: dict, which: str, cfg, target: Target | None
               ) -> dict[str, Any]:
    """What the weights are and how to use them: the run's identity and results, its spec, the eval transform."""
    data = str(cfg.data.name)
    mean, std = datasets.MEAN_STD[data]
    folder = datasets.is_folder(data)
    if target is not None:
        load = {"library": target.format, "class": target.name, "python": target.load_code(model.spec, file)}
    else:
        load = {"library": "modernize", "class": "modernize.design.model.Network",
                "python": f"model = torch.hub.load('<modernize checkout>', 'exported', source='local', "
                          f"weights={file!r})"}
    return {
        "format": fmt, "file": file, "step": result["label"], "seed": result["seed"], "weights": which,
        "spec": spec_as_dict(model.spec), "config_hash": result.get("config_hash"), "recipe": result.get("recipe"),
        "data": data, "profile": result.get("profile"), "epochs": result.get("epochs"),
        "top1": result.get("final_top1"), "ema_top1": result.get("ema_final_top1"),
        "commit": result.get("git_commit"),
        "eval_transform": {"resolution": int(cfg.profile.resolution), "mean": list(mean), "std": list(std),
                           # image folders: the recipe's resize to resolution / crop_pct; in-memory data: the
                           # shorter side resized (antialiased, bilinear) to the resolution and centre-cropped
                           "interpolation": str(cfg.recipe.interpolation) if folder else "bilinear",
                           "crop_pct": EVAL_CROP_PCT if folder else 1.0},
        "load": load,
    }


def export_run(run_dir: Path, fmt: str, ema: bool | None = None, out: Path | None = None) -> tuple[Path, Path]:
    """Write the run's weights in `fmt` and the model card (.json beside them); returns both paths."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if out is not None:
        check_out(out, fmt)
    model, result, which, cfg = run_weights(run_dir, ema)
    label = f"{result['label']} ({run_dir.name})"
    contents, target = export_weights(model, fmt, int(cfg.profile.resolution), label)
    out = out or run_dir / "export" / f"{run_dir.name}-{fmt}-{which}{SUFFIX.get(fmt, '.pth')}"
    card = model_card(fmt, out.name, model, result, which, cfg, target)
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
    if fmt == "safetensors" and out.suffix != ".safetensors":
        raise ExportError(f"--out {out}: --format safetensors writes a .safetensors file; name it FILE.safetensors")
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
