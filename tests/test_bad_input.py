"""Bad input fails before anything is built, with a message naming the field and what is allowed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modernize import build_model, compose
from modernize.design.config import model_spec

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("override,field,allowed", [
    ("model.block.kernel_size=4", "block.kernel_size", "odd"),
    ("model.block.groups=5", "block.groups", "divisor"),
    ("model.block.groups=0", "block.groups", "positive integer or 'depthwise'"),
    ("model.depths=[3,0,9,3]", "model.depths[1]", "positive integer"),
    ("model.widths=[64,-8,256,512]", "model.widths[1]", "positive integer"),
    ("model.block.norm=group", "block.norm", "batch, layer"),
    ("model.block.activation=swish", "block.activation", "relu, gelu, silu"),
    ("model.block.expansion=2.5", "block.expansion", "positive integer"),
    ("model.block.expansion=0", "block.expansion", "positive integer"),
    ("model.block.norm_after=[pw3]", "block.norm_after", "pw1, spatial, pw2"),
])
def test_invalid_specs_raise_a_value_error_naming_the_field(override, field, allowed):
    with pytest.raises(ValueError) as info:
        model_spec(compose([override]))
    assert field in str(info.value) and allowed in str(info.value)


def test_unknown_step_lists_the_valid_names():
    with pytest.raises(ValueError, match="valid steps, in roadmap order: resnet50, recipe"):
        build_model("convnext")


def test_unknown_delta_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown delta 'swin'; valid deltas, in roadmap order: recipe, stage_ratio"):
        compose(["+delta=[gelu,swin]"])


def test_unknown_names_list_the_ones_found_on_the_users_search_path_after_the_roadmaps(tmp_path):
    (tmp_path / "delta").mkdir()
    (tmp_path / "delta" / "silu.yaml").write_text("# @package _global_\nmodel:\n  block: {activation: silu}\n")
    with pytest.raises(ValueError) as info:
        compose(["+delta=[swin]", f"hydra.searchpath=[file://{tmp_path}]"])
    assert "layer_norm, separate_downsampling; also found: silu" in str(info.value)
    assert "hydra.searchpath=[file://<dir>] or $MODERNIZE_CONFIG_PATH" in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize("arg,expected", [
    ("+step=nope", "unknown step 'nope'"),
    ("+delta=[gelu,nope]", "unknown delta 'nope'"),
    ("model.block.kernel_size=6", "block.kernel_size must be an odd"),
])
def test_cli_reports_bad_names_in_one_line_and_fails(arg, expected, tmp_path):
    proc = subprocess.run([sys.executable, "run.py", "task=profile", arg, f"out_root={tmp_path}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert expected in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------ the table: every bad input, one line
# Each case runs what `python run.py <overrides>` runs (validate_argv, the composed config, run_task) in this process
# and must end with exit != 0, exactly one line on stderr naming the problem, no traceback, and no file in the run
# directory that looks like a result. `prepare(run_dir, tmp_path)` sets the folder up first and may return extra
# overrides.
def _empty_root(run_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    return [f"data.root={tmp_path / 'empty'}"]


def _three_of_four(run_dir, tmp_path):
    from files import write_fashion_mnist

    write_fashion_mnist(tmp_path / "fm", 4, 2, gz=True)
    (tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz").unlink()
    return [f"data.root={tmp_path / 'fm'}"]


def _truncated_gz(run_dir, tmp_path):
    from files import write_fashion_mnist

    write_fashion_mnist(tmp_path / "fm", 4, 2, gz=True)
    images = tmp_path / "fm" / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:40])
    return [f"data.root={tmp_path / 'fm'}"]


def _corrupt_gz(run_dir, tmp_path):
    from files import write_fashion_mnist

    write_fashion_mnist(tmp_path / "fm", 4, 2, gz=True)
    (tmp_path / "fm" / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 20)
    return [f"data.root={tmp_path / 'fm'}"]


def _corrupt_checkpoint(run_dir, tmp_path):
    run_dir.mkdir(parents=True)
    (run_dir / "last.pt").write_bytes(b"not a checkpoint")


def _other_config_checkpoint(run_dir, tmp_path):
    import torch

    run_dir.mkdir(parents=True)
    torch.save({"version": 1, "config_hash": "0123456789ab", "step_name": "gelu"}, run_dir / "last.pt")


def _summary_text(text):
    def prepare(run_dir, tmp_path):
        run_dir.mkdir(parents=True)
        (run_dir / "summary.json").write_text(text)
    return prepare


def _run_dir_is_a_file(run_dir, tmp_path):
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    run_dir.write_text("a file where the run directory should be")


def _held_by_another_run(run_dir, tmp_path):
    import contextlib

    from modernize.training.lock import run_lock

    stack = contextlib.ExitStack()
    stack.enter_context(run_lock(run_dir))
    return stack  # held until the case is checked


def _folder_of_images(run_dir, tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        (tmp_path / "photos" / split / "cat").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "photos" / split / "cat" / "0.png")
    return [f"data.root={tmp_path / 'photos'}", "data=fashion_mnist"]


SMOKE_IN_PROCESS = ["profile=smoke", "data=synthetic", "train.deterministic=true", "train.threads=1",
                    "train.device=cpu", "profile.epochs=1", "logger.wandb.mode=disabled"]
BAD_INPUTS = [
    # names
    ("+step=nope", None, "unknown step 'nope'"),
    ("+delta=[gelu,nope]", None, "unknown delta 'nope'"),
    ("task=bogus", None, "task must be one of train, profile, eval"),
    # the model
    ("model.block.kernel_size=4", None, "block.kernel_size must be an odd"),
    ("model.block.kernel_size=0", None, "block.kernel_size"),
    ("model.block.kernel_size=-3", None, "block.kernel_size"),
    ("model.block.kernel_size=9999", None, "block.kernel_size must be at most 111"),
    ("task=profile +step=kernel_size model.block.kernel_size=9999", None, "block.kernel_size must be at most 111"),
    ("model.widths=[]", None, "widths"),
    ("model.depths=[3,4]", None, "depths"),
    ("model.depths=[3,0,9,3]", None, "model.depths[1]"),
    ("model.block.groups=5", None, "block.groups"),
    ("model.block.activation=swish", None, "block.activation"),
    ("model.block.norm=group", None, "block.norm"),
    ("model.block.expansion=0", None, "block.expansion"),
    # the recipe, the profile, the run
    ("recipe.lr=-0.1", None, "recipe.lr must be a positive number"),
    ("recipe.lr=nan", None, "recipe.lr must be a positive number"),
    ("recipe.lr=inf", None, "recipe.lr must be a positive number, got inf (it must be finite)"),
    ("recipe.lr=abc", None, "recipe.lr must be a positive number"),
    ("recipe.optimizer=lion", None, "recipe.optimizer must be one of sgd, adamw"),
    ("recipe.schedule=linear", None, "recipe.schedule must be one of step, cosine"),
    ("recipe.ema_decay=1.5", None, "recipe.ema_decay must be a number in (0, 1) or null, got 1.5"),
    ("recipe.random_erasing=2", None, "recipe.random_erasing must be a number in [0, 1], got 2"),
    ("recipe.label_smoothing=1", None, "recipe.label_smoothing must be a number in [0, 1)"),
    ("recipe.warmup_epochs=300 +step=recipe", None, "recipe.warmup_epochs must be a number in [0, 300)"),
    ("recipe.min_lr=-1 +step=recipe", None, "recipe.min_lr must be a number in [0, inf)"),
    ("recipe.momentum=1.5", None, "recipe.momentum must be a number in [0, 1)"),
    ("recipe.betas=[0.9,1.0] +step=recipe", None, "recipe.betas[1] must be a number in [0, 1)"),
    ("recipe.milestones=[60,30]", None, "recipe.milestones must be increasing whole epochs in (0, 90)"),
    ("recipe.random_resized_crop_scale=[0.5,0.1]", None, "recipe.random_resized_crop_scale must be [low, high]"),
    ("recipe.randaugment=[12,0.5] +step=recipe", None, "recipe.randaugment must be [magnitude in 0..10"),
    ("recipe.interpolation=nearest", None, "recipe.interpolation must be one of bilinear, bicubic"),
    ("recipe.random_erasing_mode=zeros", None, "recipe.random_erasing_mode must be one of const, rand, pixel"),
    # a shortened recipe names the setting that made its schedule invalid; an appended key nothing reads is refused
    ("recipe.epochs=1 +step=recipe", None, "recipe.warmup_epochs must be a number in [0, 1), got 20 (its range comes "
                                           "from recipe.epochs=1"),
    ("+train.epochs=1", None, "+train.epochs=1 adds train.epochs, which the config does not declare and no part of "
                              "modernize reads: the run would ignore it; the settings named epochs: recipe.epochs, "
                              "profile.epochs"),
    ("+model.block.se_ratio=0.25", None, "+model.block.se_ratio=0.25 adds model.block.se_ratio"),
    # a key the config does not declare, without '+': Hydra's six lines and exit 1, before this check
    ("model.block.kernal_size=9", None, "model.block.kernal_size=9 sets model.block.kernal_size, which the config "
                                        "does not declare; the closest declared: model.block.kernel_size ("),
    ("train.epoch=3", None, "the closest declared: recipe.epochs, profile.epochs"),
    ("train.accumulation_steps=0", None, "train.accumulation_steps must be a positive integer"),
    ("train.accumulation_steps=3", None, "the global batch 64 must divide evenly into train.accumulation_steps=3"),
    ("train.accumulation_steps=some", None, "train.accumulation_steps must be a positive integer or auto, got 'some'"),
    ("train.device_batch=0", None, "train.device_batch must be a positive integer or null, got 0"),
    ("train.accumulation_steps=auto train.device_batch=24", None,
     "the global batch 64 cannot be met exactly with 1 process(es) x device batch 24"),
    ("train.accumulation_steps=2 train.device_batch=8", None,
     "1 process(es) x train.device_batch=8 x train.accumulation_steps=2 = 16, not the global batch 64"),
    ("profile.resolution=100000", None, "data=synthetic at resolution 100000 (320 images, made at that resolution) "
                                        "would need"),
    ("recipe.batch_size=0", None, "recipe.batch_size must be a positive integer"),
    ("profile.batch_size=0", None, "profile.batch_size must be a positive integer"),
    ("profile.epochs=0", None, "profile.epochs must be a positive integer"),
    ("profile.resolution=0", None, "profile.resolution must be a positive integer"),
    ("profile.width_multiplier=0", None, "profile.width_multiplier must be a positive number"),
    ("profile.lr_scaling=cubic", None, "profile.lr_scaling must be one of linear, sqrt"),
    ("seed=abc", None, "seed must be a non-negative integer, got 'abc'"),
    ("seed=-1", None, "seed must be a non-negative integer"),
    ("train.precision=fp8", None, "train.precision must be one of fp32, bf16, fp16"),
    # how the run executes: every field in its range before anything starts
    ("train.threads=-2", None, "train.threads must be auto, a positive integer or null, got -2"),
    ("train.threads=1.5", None, "train.threads must be auto, a positive integer or null, got 1.5"),
    ("train.threads=all", None, "train.threads must be auto, a positive integer or null, got 'all'"),
    ("train.workers=-1", None, "train.workers must be a whole number >= 0, got -1"),
    ("train.checkpoint_every_steps=-5", None, "train.checkpoint_every_steps must be a whole number >= 0, got -5"),
    ("train.log_every_steps=0", None, "train.log_every_steps must be a positive integer, got 0"),
    ("train.throughput_batch=0", None, "train.throughput_batch must be a positive integer, got 0"),
    ("train.resume=maybe", None, "train.resume must be true or false, got 'maybe'"),
    ("train.device=tpu", None, "train.device must be auto, cpu, cuda, cuda:N or mps"),
    pytest.param("train.device=cuda", None, "CUDA is not available", marks=pytest.mark.skipif(
        __import__("torch").cuda.is_available(), reason="this machine has CUDA")),
    pytest.param("profile=gpu train.device=auto", None, "profile=gpu is meant for a GPU and this machine has none",
                 marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")),
    pytest.param("profile=imagenet data=synthetic train.device=auto", None, "profile=imagenet is meant for a GPU",
                 marks=pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")),
    # data
    ("data=imagefolder", None, "needs data.root="),
    ("data.root=/nonexistent/fashion", None, "data.root=/nonexistent/fashion does not exist"),
    # a folder of images under a data set of files: it once ended in Fashion-MNIST's missing idx files
    ("", _folder_of_images, "holds train/ and val/ class folders of images, and data=fashion_mnist reads its own "
                            "files (the four idx files): a folder of images needs data=imagefolder"),
    ("data=fashion_mnist", _empty_root, "lacks Fashion-MNIST's train-images-idx3-ubyte"),
    ("data=fashion_mnist", _three_of_four, "lacks Fashion-MNIST's t10k-labels-idx1-ubyte"),
    ("data=fashion_mnist", _truncated_gz, "train-images-idx3-ubyte.gz (EOFError"),
    ("data=fashion_mnist", _corrupt_gz, "train-labels-idx1-ubyte.gz"),
    # what the run directory already holds
    ("", _corrupt_checkpoint, "is corrupt or not a modernize checkpoint"),
    ("", _other_config_checkpoint, "belongs to another config"),
    ("", _summary_text("{not json"), "summary.json is unreadable (JSONDecodeError"),
    ("", _summary_text("[1, 2]"), "summary.json is not a modernize summary"),
    ("", _run_dir_is_a_file, "cannot write in the run directory"),
    ("", _held_by_another_run, "is in use by PID"),
]
RESULT_LIKE = ("summary.json", "metrics.jsonl", "config.yaml", "failed.json", ".hydra", "run.log", "wandb")


@pytest.mark.parametrize("overrides,prepare,expected", BAD_INPUTS)
def test_bad_input_gives_one_line_no_traceback_and_no_result(overrides, prepare, expected, tmp_path, capsys):
    from modernize.training.cli import run_task, validate_argv

    run_dir = tmp_path / "sweep" / "run"
    before = set()
    extra = prepare(run_dir, tmp_path) if prepare else None
    args = [*SMOKE_IN_PROCESS, *[a for a in overrides.split(" ") if a], *(extra if isinstance(extra, list) else [])]
    if run_dir.is_dir():
        before = {p.name for p in run_dir.iterdir()}
    with pytest.raises(SystemExit) as info:
        validate_argv(["run.py", *args])
        run_task(compose(args), run_dir, multirun=False)
    if hasattr(extra, "close"):
        extra.close()
    assert info.value.code not in (0, None)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in lines[0], lines
    if run_dir.is_dir():
        new = {p.name for p in run_dir.iterdir()} - before - {".lock"}
        assert not new & set(RESULT_LIKE) and "last.pt" not in new, new


def test_a_step_with_extra_deltas_is_labelled_as_what_it_is_not_as_the_papers_row():
    from modernize.design.config import run_label_of

    assert run_label_of(compose(["+step=gelu", "+delta=[layer_norm]"])) == "gelu+layer_norm"
    assert run_label_of(compose(["+step=gelu"])) == "gelu"


def test_a_gpu_profile_trains_on_the_cpu_only_when_asked_to():
    """profile=gpu on a machine without CUDA: refused with train.device=auto (above), accepted with train.device=cpu;
    the flag says how a run executes, so it leaves the config hash alone."""
    from modernize.training.checks import check_training_device
    from modernize.training.identity import config_hash

    check_training_device(compose(["profile=gpu", "train.device=cpu"]))
    check_training_device(compose(["profile=cpu", "train.device=auto"]))  # a CPU profile: nothing to refuse
    gpu = compose(["profile=gpu"])
    assert gpu.profile.for_gpu and config_hash(gpu) == config_hash(compose(["profile=gpu", "profile.for_gpu=false"]))


@pytest.mark.parametrize("overrides", [["task=profile"], ["task=profile", "recipe.epochs=1", "+step=recipe"],
                                       ["recipe.lr=-1"]])
def test_a_task_that_writes_nothing_leaves_no_empty_run_folder(overrides, tmp_path):
    """task=profile and a refused run: the folder Hydra made for the run (and its sweep folder) is removed again,
    so no empty folder looks like a run that never started."""
    from modernize.training.cli import run_task

    run_dir = tmp_path / "sweep" / "run"
    run_dir.mkdir(parents=True)  # as Hydra makes it before the task starts
    try:
        run_task(compose([*SMOKE_IN_PROCESS, *overrides]), run_dir, multirun=False)
    except SystemExit as e:
        assert e.code == 2
    assert not (tmp_path / "sweep").exists()


def test_task_profile_refuses_the_recipe_a_run_would_refuse(capsys):
    from modernize.training.cli import run_task

    with pytest.raises(SystemExit):
        run_task(compose(["task=profile", "+step=recipe", "recipe.epochs=1"]), Path("/nonexistent/run"), False)
    assert "recipe.warmup_epochs must be a number in [0, 1)" in capsys.readouterr().err


@pytest.mark.parametrize("first, second", [("1", "2"), ("2", "1")])  # a short run, then a longer one, and back
def test_a_folder_holding_another_configs_run_says_what_differs_and_the_two_ways_out(first, second, tmp_path,
                                                                                   capsys):
    """A finished run of profile.epochs=<first> in the folder, then profile.epochs=<second> there: refused in one
    line naming the setting that differs (that run's value first) and how to keep both or replace it."""
    from modernize.training.cli import run_task

    run_dir = tmp_path / "sweep" / "run"
    small = ["model.depths=[1,1,1,1]", "profile.train_subset=32", "profile.val_subset=16", "profile.batch_size=16"]
    run_task(compose([*SMOKE_IN_PROCESS, *small, f"profile.epochs={first}"]), run_dir, multirun=False)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        run_task(compose([*SMOKE_IN_PROCESS, *small, f"profile.epochs={second}"]), run_dir, multirun=False)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "already holds a finished run of another config" in line
    assert f"that run vs this one: profile.epochs: {first} vs {second}" in line
    assert "pass sweep_name=<name> to write this run into another folder" in line and f"remove {run_dir}" in line
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == int(first)  # the finished run is kept


def test_profile_imagenet_brings_an_image_folder_and_refuses_to_start_without_its_root():
    """A user who types profile=imagenet gets ImageNet's data layout, not Fashion-MNIST upsampled to 224 px."""
    from modernize.training.checks import check_config
    from modernize.training.runtime import RunError

    assert compose(["profile=imagenet"]).data.name == "imagefolder"
    assert compose(["profile=imagenet", "data=cifar10", "data.root=/tmp"]).data.name == "cifar10"  # still a choice
    with pytest.raises(RunError) as e:
        check_config(compose(["+step=resnet50", "profile=imagenet", "train.device=cpu"]))
    assert str(e.value) == ("data=imagefolder (profile=imagenet) needs data.root=<folder> with train/ and val/ class "
                            "folders, ImageNet's layout: pass data.root=<folder>, or "
                            "data=<fashion_mnist|cifar10|cifar100|synthetic> to train on another data set")


def test_a_cpu_run_whose_step_would_not_fit_is_refused_before_it_trains(tmp_path, capsys, monkeypatch):
    """ResNet-50 on the cpu profile at 1024 px grew past 17 GB and was ended by the OOM killer without a message.
    Here at 512 px on a machine with 4 GiB free (the machine is simulated; the estimate is real): one line with the
    numbers and the device batch that fits, exit 2, no result."""
    from modernize.data import datasets
    from modernize.training.cli import run_task

    monkeypatch.setattr(datasets, "available_bytes", lambda device="cpu": 4 * 2**30)
    run_dir = tmp_path / "sweep" / "run"
    run_dir.mkdir(parents=True)
    with pytest.raises(SystemExit) as info:
        run_task(compose(["+step=resnet50", "data=synthetic", "profile.resolution=512", "train.threads=1",
                          "logger.wandb.mode=disabled"]), run_dir, multirun=False)
    lines = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(lines) == 1
    assert lines[0].startswith("error: resnet50 at 512 px on the CPU: a training step at device batch 128 needs about ")
    assert "this machine has 4.0 GiB available (a step may use 80%): use train.device_batch=16 " \
           "train.accumulation_steps=auto" in lines[0]
    assert not {p.name for p in run_dir.iterdir()} - {".lock"}


def test_a_data_root_of_images_passes_with_data_imagefolder(tmp_path):
    """The refusal above is only for data sets of files: the same folder is a valid data=imagefolder root."""
    from modernize.training.checks import check_data

    extra = _folder_of_images(None, tmp_path)
    check_data(compose(["data=imagefolder", extra[0]]))
