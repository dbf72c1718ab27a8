"""task=preflight end to end on small image folders the tests write (CPU): the table, the verdict, preflight.json,
and each no-go case the checks can meet on this machine."""

from __future__ import annotations

import json

import pytest

from helpers import ROOT, photo, run_cli
from modernize import compose

WNIDS = ("n01443537", "n02085620")


def image_folder(root, per_class=4, bad=False):
    for split in ("train", "val"):
        for c, wnid in enumerate(WNIDS):
            (root / split / wnid).mkdir(parents=True)
            for i in range(per_class):
                photo(320, 240, seed=100 * c + 10 * i + (split == "val")).save(root / split / wnid / f"{i}.jpg")
    if bad:
        (root / "val" / WNIDS[0] / "truncated.jpg").write_bytes(b"\xff\xd8\xff not a whole JPEG")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return image_folder(tmp_path_factory.mktemp("imagenet-like"))


def preflight_in_process(tmp_path, *overrides):
    """task=preflight through the CLI's task runner; (exit status, preflight.json's checks by name, stdout)."""
    from modernize.training.cli import run_task

    run_dir = tmp_path / "run"
    cfg = compose(["task=preflight", "+step=resnet50", "profile=smoke", "data=imagefolder", "train.device=cpu",
                   "train.workers=0", "train.threads=1", "profile.batch_size=4", "profile.train_subset=null",
                   "profile.val_subset=null", "preflight.timed_batch=2", "preflight.steps=1", *overrides])
    status = 0
    try:
        run_task(cfg, run_dir, multirun=False)
    except SystemExit as e:
        status = e.code
    report = json.loads((run_dir / "preflight.json").read_text())
    return status, report, {c["name"]: c for c in report["checks"]}


@pytest.mark.slow
def test_preflight_at_imagenet_size_prints_the_table_and_verdict_and_writes_preflight_json(folder, tmp_path):
    """The command a cluster user types, on this CPU (train.device=cpu: profile=imagenet is meant for GPUs)."""
    proc = run_cli("task=preflight", "+step=resnet50", "profile=imagenet", f"data.root={folder}", "train.device=cpu",
                   "train.workers=0", "train.threads=1", "profile.batch_size=4", "preflight.timed_batch=2",
                   "preflight.steps=1", f"out_root={tmp_path}", check=True)
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["check", "verdict", "detail"]
    assert [line.split()[0] for line in lines[2:] if line[:1].isalpha() and not line.startswith(("verdict", "wrote"))
            ] == ["config", "devices", "data", "batch", "speed", "disk", "wandb", "command"]
    assert "verdict: GO" in proc.stdout
    report = json.loads((tmp_path / "manual" / "resnet50-seed0" / "preflight.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert report["verdict"] == "go"
    # not ImageNet-1K: a warning with the numbers, not a no-go
    assert checks["data"]["verdict"] == "warn"
    assert "not ImageNet-1K: classes 2 (ImageNet-1K: 1,000), train 8 (ImageNet-1K: 1,281,167), val 8" in \
        checks["data"]["detail"]
    assert checks["batch"]["values"] == {"processes": 1, "device_batch": 4, "accumulation_steps": 1,
                                         "global_batch": 4, "lr": pytest.approx(0.1 * 4 / 256),
                                         "batch_norm_batch": 4}
    speed = checks["speed"]["values"]
    assert speed["timed_batch"] == 2 and speed["images_per_s_per_process"] > 0
    assert speed["run_s"] == pytest.approx(speed["epoch_s"] * 90, rel=0.01)  # the original recipe's 90 epochs
    # the weights and SGD's momentum of ResNet-50 with a 2-class head (23.5M parameters)
    assert checks["disk"]["values"]["checkpoint_bytes"] > 2 * 23_500_000 * 4
    assert checks["command"]["detail"] == (f"python run.py +step=resnet50 profile=imagenet data.root={folder} "
                                           f"train.device=cpu train.workers=0 train.threads=1 profile.batch_size=4 "
                                           f"out_root={tmp_path}")


@pytest.mark.slow
def test_a_slurm_launch_gives_its_command_and_sbatch_settings_and_is_no_go_past_its_time_limit(tmp_path):
    folder = image_folder(tmp_path / "data", per_class=8)  # 16 images: one per process of 2 nodes x 8 tasks
    proc = run_cli("task=preflight", "hydra/launcher=slurm", "hydra.launcher.nodes=2", "hydra.launcher.timeout_min=1",
                   "hydra.launcher.max_num_timeout=0", "+step=resnet50", "profile=smoke", "data=imagefolder",
                   f"data.root={folder}", "train.device=cpu", "train.workers=0", "profile.batch_size=16",
                   "profile.train_subset=null", "profile.val_subset=null", "profile.epochs=100000",
                   "preflight.timed_batch=2", "preflight.steps=1", f"out_root={tmp_path}")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "verdict: NO-GO (speed)" in proc.stdout
    checks = {c["name"]: c for c in json.loads(
        (tmp_path / "manual" / "resnet50-seed0" / "preflight.json").read_text())["checks"]}
    assert checks["batch"]["values"]["processes"] == 16  # 2 nodes x 8 tasks
    assert "more than SLURM allows (0.0 h: timeout_min x (1 + max_num_timeout))" in checks["speed"]["detail"]
    command = checks["command"]["detail"]
    assert command.startswith("python run.py -m hydra/launcher=slurm hydra.launcher.nodes=2 "
                              "hydra.launcher.timeout_min=1 hydra.launcher.max_num_timeout=0 +step=resnet50 ")
    assert "; sbatch: nodes=2, tasks_per_node=8, gpus_per_node=8, cpus_per_task=10" in command


@pytest.mark.parametrize("make_folder, overrides, failing, expected", [
    (lambda root: image_folder(root, bad=True), [], "data", "unreadable: {root}/val/n01443537/truncated.jpg"),
    (image_folder, ["train.accumulation_steps=auto", "train.device_batch=3"], "batch",
     "the global batch 4 cannot be met exactly with 1 process(es) x device batch 3"),
    (image_folder, ["profile.batch_size=64"], "batch", "the training set (8 images) is smaller than one global batch "
                                                        "(64)"),
    (image_folder, ["preflight.steps=0"], "config", "preflight.steps must be a positive integer, got 0"),
    (lambda root: root, [], "config", "data.root={root} does not exist or is not a folder"),
    pytest.param(image_folder, ["+profile.for_gpu=true", "train.device=auto"], "devices",
                 "profile=smoke is meant for a GPU and this machine has none", marks=pytest.mark.skipif(
                     __import__("torch").cuda.is_available(), reason="this machine has CUDA")),
])
def test_each_no_go_is_named_in_its_line_and_the_verdict(tmp_path, make_folder, overrides, failing, expected):
    root = make_folder(tmp_path / "data")
    status, report, checks = preflight_in_process(tmp_path, f"data.root={root}", *overrides)
    assert status == 1 and report["verdict"] == "no-go"
    assert checks[failing]["verdict"] == "no-go" and expected.format(root=root) in checks[failing]["detail"]
    assert [name for name, c in checks.items() if c["verdict"] == "no-go"] == [failing]


def test_a_checkpoint_larger_than_the_free_disk_is_no_go(tmp_path):
    from modernize.training.preflight import disk_check

    assert disk_check(10**18, tmp_path / "not" / "yet").verdict == "no-go"
    assert disk_check(1, tmp_path).verdict == "go"


def test_the_preflight_command_is_in_the_help_and_leaves_the_hash_alone():
    from modernize.training.identity import config_hash

    assert config_hash(compose(["+step=gelu"])) == config_hash(compose(["+step=gelu", "preflight.steps=9"]))
    assert "preflight" in (ROOT / "conf" / "config.yaml").read_text()
