"""Training runs end to end: what a run writes, exact resume after SIGKILL, W&B offline, bad input, faults."""

import json
import os
import signal
import time

import pytest
import torch
from helpers import SMOKE, popen_cli, run_cli
from wandb_offline import read_offline_run

pytestmark = pytest.mark.slow  # each test starts real `python run.py` processes


def test_a_run_writes_config_metrics_summary_and_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    run_cli("+step=separate_downsampling", *SMOKE, f"hydra.run.dir={run_dir}", check=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("label", "seed", "profile", "data", "final_top1", "final_top5", "best_top1", "params", "gflops_224",
                "gflops_run", "train_images_per_s", "infer_images_per_s", "wall_time_s", "git_commit",
                "config_hash", "scaled"):
        assert key in summary, key
    assert summary["label"] == "separate_downsampling" and summary["params"] == 28_589_128
    assert summary["scaled"]["width_multiplier"] == 0.125 and summary["scaled"]["resolution"] == 32
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert {"train_loss", "lr", "val_top1", "val_top5", "train_images_per_s"} <= set(json.loads(lines[0]))
    assert (run_dir / "config.yaml").exists()
    state = torch.load(run_dir / "last.pt", weights_only=True)  # no arbitrary pickle needed to read it
    assert state["epoch"] == 2 and state["config_hash"] == summary["config_hash"]


def _wait_for_mid_epoch_checkpoint(run_dir, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        ckpt = run_dir / "last.pt"
        if ckpt.exists():
            try:
                state = torch.load(ckpt, weights_only=True)
            except Exception:  # noqa: BLE001 -- being replaced right now; atomic rename, so retry
                state = None
            if state and state["epoch"] >= 1 and state["step_in_epoch"] > 0:
                return state
        time.sleep(0.05)
    raise AssertionError("no mid-epoch checkpoint appeared")


def test_a_run_killed_mid_epoch_resumes_to_the_same_result(tmp_path):
    # 4 epochs of 32 steps: the kill lands in epoch 2 with about 90 steps to go, so a busy machine's delay between
    # seeing the checkpoint and killing cannot let the run finish first (3 epochs of 8 steps once did)
    args = ["+step=separate_downsampling", *SMOKE, "profile.epochs=4", "data.size=2048",
            "train.checkpoint_every_steps=1"]
    reference = tmp_path / "uninterrupted"
    run_cli(*args, f"hydra.run.dir={reference}", check=True)

    resumed = tmp_path / "killed"
    proc = popen_cli(*args, f"hydra.run.dir={resumed}")
    state = _wait_for_mid_epoch_checkpoint(resumed, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (resumed / "summary.json").exists()
    again = run_cli(*args, f"hydra.run.dir={resumed}", check=True)
    assert "resuming" in again.stdout, f"killed at epoch {state['epoch']} step {state['step_in_epoch']}"

    a = json.loads((reference / "summary.json").read_text())
    b = json.loads((resumed / "summary.json").read_text())
    for key in ("final_top1", "final_top5", "best_top1", "best_top5", "config_hash"):
        assert a[key] == b[key], key
    def metrics(run):  # everything but timings
        return [{k: v for k, v in json.loads(line).items() if "per_s" not in k and "time" not in k}
                for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert metrics(reference) == metrics(resumed)  # train loss and lr too, epoch by epoch
    ref_state = torch.load(reference / "last.pt", weights_only=True)["model"]
    res_state = torch.load(resumed / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(ref_state[k], res_state[k]) for k in ref_state)


def test_wandb_offline_run_holds_the_logged_metrics(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run_cli("+step=gelu", *SMOKE, "logger.wandb.mode=offline", "sweep_name=wandb-test",
            f"hydra.run.dir={run_dir}", check=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    logged = read_offline_run(run_dir)
    tops = [row["val/top1"] for row in logged["history"] if "val/top1" in row]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert tops == pytest.approx([m["val_top1"] for m in metrics])
    assert logged["summary"]["final_top1"] == pytest.approx(summary["final_top1"])
    assert logged["config"]["model"]["block"]["activation"] == "gelu"
    assert logged["config"]["gflops_224"] == pytest.approx(summary["gflops_224"])


@pytest.mark.parametrize("override,message", [  # through Hydra's own command line; the rest: test_loop.py
    ("recipe.lr=-0.1", "recipe.lr must be a positive number"),
    ("recipe=sgdr", "Could not find 'recipe/sgdr'"),
    ("data=mnist", "Could not find 'data/mnist'"),
    ("profile=tpu", "Could not find 'profile/tpu'"),
])
def test_bad_config_fails_before_training_and_writes_nothing(tmp_path, override, message):
    run_dir = tmp_path / "run"
    proc = run_cli("+step=resnet50", *SMOKE, override, f"hydra.run.dir={run_dir}")
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    for name in ("summary.json", "metrics.jsonl", "last.pt"):
        assert not (run_dir / name).exists()


def test_imagefolder_data_trains_through_dataloader_workers(tmp_path):
    from PIL import Image

    for split, per_class in (("train", 40), ("val", 8)):
        for c, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
            folder = tmp_path / "data" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                shade = tuple(min(255, v + 3 * i) for v in color)
                Image.new("RGB", (48, 40), shade).save(folder / f"{i}.png")
    run_dir = tmp_path / "run"
    run_cli("+step=separate_downsampling", *SMOKE, "data=imagefolder", f"data.root={tmp_path / 'data'}",
            "train.workers=2", "profile.batch_size=16", f"hydra.run.dir={run_dir}", check=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["data"] == "imagefolder"
    # all 24 validation images (3 classes x 8) were read and scored: top-1 is a whole number of 24ths
    assert summary["final_top1"] * 24 / 100 == pytest.approx(round(summary["final_top1"] * 24 / 100))
    state = torch.load(run_dir / "last.pt", weights_only=True)
    # 120 training images in batches of 16 with the last partial batch dropped: 7 steps per epoch, 2 epochs
    assert state["scheduler"]["last_epoch"] == 14


def test_ema_of_the_weights_is_evaluated_and_reported(tmp_path):
    run_dir = tmp_path / "run"
    run_cli("+step=separate_downsampling", *SMOKE, "recipe.ema_decay=0.9", f"hydra.run.dir={run_dir}", check=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert summary["ema_final_top1"] == metrics[-1]["ema_val_top1"]
    state = torch.load(run_dir / "last.pt", weights_only=True)
    assert int(state["ema"]["n_averaged"]) == state["scheduler"]["last_epoch"] == 8  # every step: 256 / 64 x 2
    ema, model = state["ema"], state["model"]
    assert any(not torch.equal(ema[f"module.{k}"], v) for k, v in model.items() if v.is_floating_point())


def test_auto_threads_leave_the_cores_of_running_tasks_to_them(capsys):
    """On a 2-core machine busy with another process, the short run took 1,858 s at 33 img/s with PyTorch's one
    thread per core and 94 s with one thread: train.threads=auto counts the tasks running when the run starts and
    leaves their cores to them, saying so in one line. Real busy processes, one per core."""
    import subprocess
    import sys

    from modernize.training.runtime import set_cpu_threads, usable_cores

    before = torch.get_num_threads()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(usable_cores())]
    try:
        time.sleep(0.5)  # they are running
        set_cpu_threads("auto")
        assert torch.get_num_threads() == 1
        line = capsys.readouterr().out.strip()
        assert line.startswith("the machine is busy: ") and line.endswith(
            f"running on {usable_cores()} core{'s' * (usable_cores() > 1)} at start; training with 1 thread "
            f"(train.threads=auto) (docs/performance.md)")
        set_cpu_threads(usable_cores())  # the user's own count is kept, with the warning
        assert torch.get_num_threads() == usable_cores()
        assert "can be several times slower than train.threads=1" in capsys.readouterr().out
    finally:
        for process in busy:
            process.kill()
            process.wait()
        torch.set_num_threads(before)


@pytest.mark.parametrize("setting,cores,others,threads", [
    ("auto", 2, 0, 2), ("auto", 2, 1, 1), ("auto", 2, 3, 1), ("auto", 16, 4.5, 12), (4, 2, 1, 4), (None, 2, 1, None),
    ("auto", 2, None, 2),  # no /proc/loadavg (not Linux): every core
])
def test_the_thread_count_of_a_cpu_run(setting, cores, others, threads, monkeypatch):
    from modernize.training.runtime import cpu_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_threads(setting, cores, others) == threads
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torchrun's, for several processes: it wins over auto
    assert cpu_threads("auto", cores, others) is None
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_threads("auto", 16, 0, processes=4) == 4 and cpu_threads("auto", 2, 0, processes=4) == 1
