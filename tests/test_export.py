"""python -m modernize.export: a run's weights in timm's, the official ConvNeXt's and torchvision's own layouts (loaded
by those libraries' classes with strict=True, giving our logits), or as safetensors with a model card; task=eval and
hubconf.py read every file back; a format that cannot hold a step is refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from helpers import ROOT, SMOKE, env, fast_tier
from modernize.design.config import compose, model_spec
from modernize.design.export import ExportError, export_weights, timm_to_official
from modernize.design.model import build
from modernize.design.timm_models import model_overrides

CLASSES = 10
RESNETS = ("resnet50", "recipe", "stage_ratio")  # the steps before the patchify stem: ResNet-50's design
CONVNEXT = "separate_downsampling"  # ConvNeXt-T
TOLERANCE = 1e-5


def expected_formats(step: str) -> set[str]:
    """Figure 2's two endpoints are the libraries' models; every step between them exists only here."""
    if step in RESNETS:
        return {"timm", "torchvision", "safetensors"}
    if step == CONVNEXT:
        return {"timm", "official", "torchvision", "safetensors"}
    return {"safetensors"}


@pytest.mark.parametrize("name", fast_tier(sorted(model_overrides())))
def test_each_step_is_written_in_exactly_the_formats_whose_classes_hold_it(name):
    """The torchvision ResNet cannot hold `gelu` (ReLU is built in), nor timm's ConvNeXt `layer_norm` (its
    downsampling is a separate layer): the refusal is one line that names what differs and what can hold it."""
    step = name.removeprefix("modernize_")
    torch.manual_seed(0)
    model = build(model_spec(compose(model_overrides()[name]), num_classes=CLASSES))
    held = {"safetensors"}
    for fmt in ("timm", "official", "torchvision"):
        try:
            export_weights(model, fmt, resolution=32, label=step)  # checks strict loading and the logits itself
            held.add(fmt)
        except ExportError as e:
            message = str(e)
            assert "\n" not in message and f"--format {fmt} cannot hold {step}" in message
            assert "differs from" in message and "safetensors" in message
    base = step.split("_k")[0] if step.startswith("kernel_size_k") else step
    assert held == expected_formats(base)


@pytest.mark.slow
def test_the_convnext_variants_go_to_every_library_s_convnext():
    """S/B/L/XL are ConvNeXt-T's design at other depths and widths, which every ConvNeXt class takes as arguments
    (ConvNeXt-S exported; B/L/XL only differ from it in those numbers)."""
    model = build(model_spec(compose(["model=convnext_s"]), num_classes=CLASSES))
    for fmt in ("timm", "official", "torchvision"):
        _, target = export_weights(model, fmt, resolution=32, label="convnext_s")
        assert target.design == "convnext_t"


def test_convnext_t_at_the_cpu_profile_s_width_and_layer_scale_goes_to_every_library_s_convnext():
    from modernize.training.proxy import run_spec

    model = build(run_spec(compose([f"+step={CONVNEXT}", "profile=cpu"]), CLASSES))
    assert model.spec.scaled_widths() == (24, 48, 96, 192) and model.spec.block.layer_scale_init == 0.1
    for fmt in ("timm", "official", "torchvision"):
        export_weights(model, fmt, resolution=32)


def test_the_refusal_names_the_fields_the_closest_class_lacks():
    """`patchify` is ResNet-50 but for its stem; `gelu` is 7 fields from either of torchvision's classes (ConvNeXt's
    norms, activations, downsampling, head norm and layer scale; ResNet's widths, kernel, groups, bottleneck, order,
    GELU and stem), and the message lists the first four of the first class."""
    patchify = build(model_spec(compose(["+step=patchify"]), num_classes=CLASSES))
    with pytest.raises(ExportError, match=r"torchvision's ResNet's design \(resnet50's\) in stem\.kind=patchify "
                                          r"\(resnet\); formats that hold it: safetensors$"):
        export_weights(patchify, "torchvision", resolution=32)
    gelu = build(model_spec(compose(["+step=gelu"]), num_classes=CLASSES))
    with pytest.raises(ExportError, match=r"torchvision's ConvNeXt's design .* \(7 fields in all\)"):
        export_weights(gelu, "torchvision", resolution=32)


def test_a_resnet_at_a_profile_s_width_fits_no_library_s_resnet():
    """timm's ResNet fixes its 7x7 stem at 64 channels, torchvision's every width: profile=cpu's x0.25 ResNet-50 is
    safetensors only, and the refusal says why."""
    from modernize.training.proxy import run_spec

    model = build(run_spec(compose(["+step=resnet50", "profile=cpu"]), CLASSES))
    with pytest.raises(ExportError, match="fixes its 7x7 stem at 64 channels"):
        export_weights(model, "timm", resolution=32)
    with pytest.raises(ExportError, match=r"widths=\[16, 32, 64, 128\] \(\[64, 128, 256, 512\]\)"):
        export_weights(model, "torchvision", resolution=32)


# --------------------------------------------------------------------------------------------------
# Round trips of short runs
# --------------------------------------------------------------------------------------------------

def short_run(root, *overrides):
    from modernize.training.train import train

    run_dir = root / "run-seed0"
    train(compose([*overrides, *SMOKE, "profile.epochs=1", "logger.wandb.mode=disabled"]), run_dir)
    return run_dir


@pytest.fixture(scope="module")
def convnext_run(tmp_path_factory):
    """ConvNeXt-T at the smoke profile's width (dims 16/24/48/96), with an EMA."""
    return short_run(tmp_path_factory.mktemp("convnext"), f"+step={CONVNEXT}", "recipe.ema_decay=0.9")


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    """ResNet-50 at full width (the libraries' ResNet classes hold no other), no EMA."""
    return short_run(tmp_path_factory.mktemp("resnet"), "+step=resnet50", "profile.width_multiplier=1.0")


def exported(run_dir, fmt, *flags):
    from modernize.training.export import export_run

    ema = {"--ema": True, "--no-ema": False}.get(flags[0]) if flags else None
    weights, card = export_run(run_dir, fmt, ema)
    return weights, json.loads(card.read_text())


def run_model(run_dir, which):
    """The run's own model with its EMA's or its own weights, as the run evaluated them."""
    from modernize.design.weights import read_weights
    from modernize.training.proxy import run_spec
    from omegaconf import OmegaConf

    state, used = read_weights(run_dir / "last.pt", which == "ema")
    assert used == which
    model = build(run_spec(OmegaConf.load(run_dir / "config.yaml"), CLASSES))
    model.load_state_dict(state)
    return model.eval()


def assert_same_logits(theirs, ours, resolution=32):
    images = torch.randn(4, 3, resolution, resolution, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ours(images)  # float32 sums in another order: within TOLERANCE of the logits' scale
        assert (theirs.eval()(images) - expected).abs().max() <= TOLERANCE * max(1.0, float(expected.abs().max()))


def assert_loads_and_computes_our_model(theirs, state, ours, card=None, folder=None):
    """The library's class takes the file's state dict with strict=True and gives our logits; so does the model the
    card's own code loads, where the card has code that runs here."""
    theirs.load_state_dict(state, strict=True)
    assert_same_logits(theirs, ours)
    if card is not None:
        assert_same_logits(run_card_code(card, folder), ours)


def run_card_code(card, folder):
    """The model card's own Python, run where the file is: it loads the file with strict=True."""
    import os

    namespace = {"torch": torch}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        exec(card["load"]["python"], namespace)
    finally:
        os.chdir(cwd)
    return namespace["model"]


@pytest.mark.slow
def test_convnext_t_loads_into_timm_s_convnext_tiny_with_the_run_s_dims(convnext_run):
    import timm

    weights, card = exported(convnext_run, "timm")
    assert card["weights"] == "ema" and card["load"]["class"] == "timm's ConvNeXt"
    theirs = timm.create_model("convnext_tiny", dims=(16, 24, 48, 96), num_classes=CLASSES)
    assert_loads_and_computes_our_model(theirs, torch.load(weights, weights_only=True), run_model(convnext_run, "ema"),
                                        card, weights.parent)


@pytest.mark.slow
def test_convnext_t_in_the_official_layout_is_what_timm_reads_official_checkpoints_with(convnext_run):
    """No installable package has the official class; timm's checkpoint_filter_fn is how timm reads the official
    convnext_tiny_1k_224_ema.pth, so an exported file it maps onto convnext_tiny is in the official layout."""
    import timm
    from timm.models.convnext import checkpoint_filter_fn

    weights, card = exported(convnext_run, "official")
    official = torch.load(weights, weights_only=True)
    assert set(official) == {"model"}
    assert {k.split(".")[0] for k in official["model"]} == {"downsample_layers", "stages", "norm", "head"}
    theirs = timm.create_model("convnext_tiny", dims=(16, 24, 48, 96), num_classes=CLASSES)
    assert_loads_and_computes_our_model(theirs, checkpoint_filter_fn(official, theirs), run_model(convnext_run, "ema"))
    assert "ConvNeXt(in_chans=3, num_classes=10, depths=[3, 3, 9, 3], dims=[16, 24, 48, 96]" in card["load"]["python"]


@pytest.mark.slow
def test_convnext_t_loads_into_torchvision_s_convnext(convnext_run):
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    weights, card = exported(convnext_run, "torchvision", "--no-ema")
    assert card["weights"] == "model"
    theirs = ConvNeXt([CNBlockConfig(16, 24, 3), CNBlockConfig(24, 48, 3), CNBlockConfig(48, 96, 9),
                       CNBlockConfig(96, None, 3)], num_classes=CLASSES)
    assert_loads_and_computes_our_model(theirs, torch.load(weights, weights_only=True),
                                        run_model(convnext_run, "model"), card, weights.parent)


@pytest.mark.slow
def test_resnet50_loads_into_torchvision_s_and_timm_s_resnet50(resnet_run):
    import timm
    import torchvision

    ours = run_model(resnet_run, "model")
    for fmt, theirs in (("torchvision", torchvision.models.resnet50(num_classes=CLASSES)),
                        ("timm", timm.create_model("resnet50", num_classes=CLASSES))):
        weights, card = exported(resnet_run, fmt)
        assert card["weights"] == "model"  # the run has no EMA
        assert_loads_and_computes_our_model(theirs, torch.load(weights, weights_only=True), ours, card, weights.parent)


@pytest.mark.slow
def test_the_model_card_says_what_the_weights_are(convnext_run):
    from safetensors import safe_open

    from modernize.design.export import CARD_KEY
    from modernize.design.spec import spec_as_dict

    weights, card = exported(convnext_run, "safetensors")
    summary = json.loads((convnext_run / "summary.json").read_text())
    assert weights.name == "run-seed0-safetensors-ema.safetensors" and card["file"] == weights.name
    assert card["spec"] == spec_as_dict(run_model(convnext_run, "ema").spec)
    assert {k: card[k] for k in ("step", "config_hash", "recipe", "data", "profile", "epochs", "top1", "ema_top1",
                                 "commit")} == {
        "step": CONVNEXT, "config_hash": summary["config_hash"], "recipe": "modern", "data": "synthetic",
        "profile": "smoke", "epochs": 1, "top1": summary["final_top1"], "ema_top1": summary["ema_final_top1"],
        "commit": summary["git_commit"]}
    assert card["preprocessing"] == summary["preprocessing"] == {
        "version": 1, "input_size": [3, 32, 32], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
        "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center"}
    assert card["card_version"] == 2 and card["num_classes"] == CLASSES
    with safe_open(str(weights), "pt") as f:
        assert json.loads(f.metadata()[CARD_KEY]) == card


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["timm", "official", "torchvision", "safetensors"])
def test_task_eval_reads_every_exported_file_back_to_the_run_s_own_top1(tmp_path, convnext_run, fmt):
    from modernize.training.cli import run_task

    weights, card = exported(convnext_run, fmt)
    cfg = compose(["task=eval", f"+step={CONVNEXT}", *SMOKE, f"eval.weights={weights}",
                   f"eval.out={tmp_path}", "train.workers=0"])
    result = run_task(cfg, tmp_path / "run", multirun=False)
    assert result["top1"] == pytest.approx(card["ema_top1"])


@pytest.mark.slow
def test_hubconf_reads_exported_files_back_as_the_run_trained_the_model(convnext_run):
    from test_hub import hub_load

    ours = run_model(convnext_run, "ema")
    safetensors, _ = exported(convnext_run, "safetensors")
    timm_file, _ = exported(convnext_run, "timm")
    for model in (hub_load("exported", weights=safetensors), hub_load(CONVNEXT, weights=safetensors),
                  hub_load("convnext_t", weights=timm_file)):  # the card beside the .pth: the run's width
        assert model.spec == ours.spec
        assert_same_logits(model, ours)
    with pytest.raises(ValueError, match="is a run of separate_downsampling, not this entry's model") as e:
        hub_load("gelu", weights=safetensors)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------

def export_cli(*args):
    return subprocess.run([sys.executable, "-m", "modernize.export", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, env=env(), timeout=300)


@pytest.mark.slow
def test_the_readme_s_export_commands_run(convnext_run):
    """README's two export lines, as a user types them, on a short ConvNeXt-T run."""
    import re
    import shlex

    section = (ROOT / "README.md").read_text().split("## Use the models elsewhere", 1)[1]
    lines = re.search(r"```bash\n(.*?)```", section, re.S).group(1).strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        command = shlex.split(line.split("#")[0].replace("<run dir>", str(convnext_run)))
        assert command[:3] == ["python", "-m", "modernize.export"]
        proc = export_cli(*command[3:])
        assert proc.returncode == 0, proc.stderr
    written = {p.name for p in (convnext_run / "export").iterdir()}
    assert {"run-seed0-timm-ema.pth", "run-seed0-timm-ema.json", "run-seed0-safetensors-ema.safetensors",
            "run-seed0-safetensors-ema.json", "run-seed0-pt2-ema.pt2", "run-seed0-pt2-ema.json"} <= written
    # the README's Python of a trained proxy model, on these files
    code = re.findall(r"```python\n(.*?)```", section, re.S)[1]
    code = code.replace("<run>", str(convnext_run / "export" / "run-seed0"))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["model"].num_classes == CLASSES and namespace["transform"].transforms[1].size == (32, 32)


@pytest.mark.slow
def test_the_command_writes_the_file_and_its_card(tmp_path, resnet_run, capsys):
    from modernize.training.export import main

    out = tmp_path / "resnet50.pth"
    assert main([str(resnet_run), "--format", "torchvision", "--out", str(out)]) == 0
    assert out.is_file() and json.loads(out.with_suffix(".json").read_text())["file"] == "resnet50.pth"
    assert f"wrote {out}" in capsys.readouterr().out


@pytest.mark.slow
def test_a_library_s_state_dict_can_go_into_a_safetensors_file(tmp_path, resnet_run):
    import timm
    from safetensors.torch import load_file

    from modernize.training.export import export_run

    out, card = export_run(resnet_run, "timm", out=tmp_path / "resnet50.safetensors")
    theirs = timm.create_model("resnet50", num_classes=CLASSES)
    assert_loads_and_computes_our_model(theirs, load_file(out), run_model(resnet_run, "model"),
                                        json.loads(card.read_text()), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("args, expected", [
    (["--format", "official"], "--format official cannot hold resnet50"),
    (["--format", "timm", "--ema"], "holds no EMA weights"),
    (["--format", "safetensors", "--out", "x.pth"], "--format safetensors writes a .safetensors file"),
    (["--format", "official", "--out", "x.safetensors"], "safetensors cannot hold"),
    (["--format", "timm", "--out", "x.json"], ".json is the model card's name"),
])
def test_the_command_refuses_in_one_line(resnet_run, capsys, args, expected):
    from modernize.training.export import main

    assert main([str(resnet_run), *args]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1


def test_a_folder_that_is_not_a_finished_run_is_refused_in_one_line(tmp_path):
    from modernize.training.export import export_run

    with pytest.raises(ExportError, match="is not a run folder"):
        export_run(tmp_path, "timm")
    run = tmp_path / "gelu-seed0"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(ExportError, match="is not a finished run") as e:
        export_run(run, "timm")
    assert "\n" not in str(e.value)


def test_the_exported_hub_entry_refuses_a_file_without_a_model_card_in_one_line(tmp_path):
    from test_hub import hub_load

    torch.save(build(model_spec(compose(["+step=gelu"]))).state_dict(), tmp_path / "gelu.pth")
    with pytest.raises(ValueError, match="has no model card") as e:
        hub_load("exported", weights=tmp_path / "gelu.pth")
    assert "\n" not in str(e.value)


def test_the_official_layout_is_the_inverse_of_timm_s_reader():
    import timm
    from timm.models.convnext import checkpoint_filter_fn

    reference = timm.create_model("convnext_atto")
    state = reference.state_dict()
    assert checkpoint_filter_fn(timm_to_official(state), reference).keys() == state.keys()


# --------------------------------------------------------------------------------------------------
# Leaving the checkout: the cards' Python as written, where this project cannot be imported
# --------------------------------------------------------------------------------------------------

BLOCKED = ("modernize", "hydra", "omegaconf", "wandb")


def run_card_elsewhere(card, folder, blocked=BLOCKED, checkout=None):
    """The card's Python, run as written in a fresh Python in which `blocked` cannot be imported (and the checkout is
    not on the path unless given); returns the logits of the model it loads on a fixed batch."""
    images = torch.randn(3, *card["preprocessing"]["input_size"], generator=torch.Generator().manual_seed(5))
    torch.save(images, folder / "images.pt")
    code = card["load"]["python"].replace("'<modernize checkout>'", repr(str(checkout)))
    script = "\n".join([
        "import sys",
        f"for name in {blocked!r}:",
        "    sys.modules[name] = None  # import raises ImportError, as where it is not installed",
        code,
        "import torch",
        "images = torch.load('images.pt')",
        "with torch.no_grad():",
        "    if not isinstance(model, torch.fx.GraphModule):  # torch.export's module is exported in eval mode",
        "        model.eval()",
        "    logits = model(images)",
        "torch.save(logits, 'logits.pt')"])
    proc = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in env().items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return images, torch.load(folder / "logits.pt")


def assert_card_runs_elsewhere(card, weights, ours, **kwargs):
    images, logits = run_card_elsewhere(card, weights.parent, **kwargs)
    with torch.no_grad():
        expected = ours(images)
    assert (logits - expected).abs().max() <= 1e-4 * max(1.0, float(expected.abs().max()))


@pytest.mark.slow
def test_every_card_s_python_runs_as_written_without_this_project(convnext_run):
    """timm's, the official and torchvision's files, and pt2, load with what their card says they need; the
    safetensors file through the checkout's hub entry, with neither hydra, omegaconf nor wandb."""
    ours = run_model(convnext_run, "ema")
    for fmt in ("timm", "official", "torchvision", "pt2"):
        weights, card = exported(convnext_run, fmt)
        assert card["load"]["python"].startswith("import torch\n")
        assert_card_runs_elsewhere(card, weights, ours)
    weights, card = exported(convnext_run, "safetensors")
    assert_card_runs_elsewhere(card, weights, ours, blocked=BLOCKED[1:], checkout=ROOT)


@pytest.fixture(scope="module")
def gelu_run(tmp_path_factory):
    """An intermediate step, which no library's class holds, at the smoke profile's width."""
    return short_run(tmp_path_factory.mktemp("gelu"), "+step=gelu")


@pytest.mark.slow
def test_an_intermediate_step_leaves_the_checkout_as_pt2_and_runs_with_torch_alone(gelu_run):
    weights, card = exported(gelu_run, "pt2")
    assert weights.suffix == ".pt2" and card["load"]["library"] == "torch" and card["step"] == "gelu"
    assert_card_runs_elsewhere(card, weights, run_model(gelu_run, card["weights"]))


@pytest.mark.slow
def test_an_intermediate_step_as_onnx_gives_our_logits_through_onnxruntime(gelu_run):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnxruntime

    weights, card = exported(gelu_run, "onnx")
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    logits = onnxruntime.InferenceSession(str(weights)).run(None, {"images": images.numpy()})[0]
    with torch.no_grad():
        expected = run_model(gelu_run, card["weights"])(images)
    assert (torch.from_numpy(logits) - expected).abs().max() <= 1e-4 * max(1.0, float(expected.abs().max()))
    assert "onnxruntime.InferenceSession" in card["load"]["python"]


@pytest.mark.slow
def test_a_trained_proxy_model_is_built_through_timm_with_its_own_transform(convnext_run, tmp_path):
    """timm.create_model with the exported file as pretrained_cfg_overlay: the run's width, classes and weights, and
    resolve_data_config gives the run's transform, which is the card's."""
    import timm
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    from modernize.data.augment import image_eval_transform
    from modernize.design.export import preprocessing_of_card

    weights, card = exported(convnext_run, "safetensors")
    model = timm.create_model(f"modernize_{CONVNEXT}", pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
    assert_same_logits(model, run_model(convnext_run, "ema"))
    config = resolve_data_config({}, model=model)
    assert config == {"input_size": (3, 32, 32), "interpolation": "bilinear", "mean": (0.5, 0.5, 0.5),
                      "std": (0.25, 0.25, 0.25), "crop_pct": 1.0, "crop_mode": "center"}
    namespace: dict = {}
    exec(card["load"]["transform_python"], namespace)
    image = Image.fromarray((torch.rand(28, 28, 3) * 255).byte().numpy())
    ours = image_eval_transform(preprocessing_of_card(card))(image)
    assert torch.equal(namespace["transform"](image), ours) and torch.equal(create_transform(**config)(image), ours)
    with pytest.raises(ValueError, match=f"is a run of {CONVNEXT}, not modernize_gelu"):
        timm.create_model("modernize_gelu", pretrained=True, pretrained_cfg_overlay={"file": str(weights)})


def test_a_card_from_a_newer_format_is_refused_in_one_line(tmp_path):
    from modernize.design.export import card_of
    from modernize.design.preprocessing import RecordError

    (tmp_path / "w.pth").write_bytes(b"")
    (tmp_path / "w.json").write_text(json.dumps({"file": "w.pth", "card_version": 99, "spec": {}}))
    with pytest.raises(RecordError, match="format version 99, newer than this modernize reads") as e:
        card_of(tmp_path / "w.pth")
    assert "\n" not in str(e.value)


def test_onnx_without_the_extra_is_refused_before_any_work(tmp_path, monkeypatch):
    from modernize.training.export import export_run

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import raises ImportError, as where it is not installed
    with pytest.raises(ExportError, match=r"--format onnx needs onnxscript, which is not installed: pip install"):
        export_run(tmp_path / "no-run", "onnx")
