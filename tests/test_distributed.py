"""torchrun + DistributedDataParallel for real: 2 CPU processes on gloo match one process with the same global batch."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT, SMOKE, env, run_cli

pytestmark = pytest.mark.slow  # torchrun with 2 gloo processes

# Everything random per process is switched off, so two ranks see exactly the batches one process sees; the
# model has no BatchNorm (per-rank batch statistics would differ by design) and no stochastic depth.
DETERMINISTIC_BATCHES = ["+step=separate_downsampling", *SMOKE, "profile.epochs=2", "data.size=1024",
                         "recipe.random_resized_crop=false", "recipe.hflip=false", "recipe.randaugment=null",
                         "recipe.mixup=0", "recipe.cutmix=0", "recipe.random_erasing=0", "model.drop_path_rate=0"]


def torchrun(*args, nproc=2, timeout=600):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                           "--standalone", "run.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env())


def kill_processes_mentioning(text):
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("single") / "run"
    run_cli(*DETERMINISTIC_BATCHES, f"hydra.run.dir={run_dir}", check=True)
    return run_dir


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    proc = torchrun(*DETERMINISTIC_BATCHES, f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir, proc


def metrics(run_dir):  # everything but timings
    return [{k: v for k, v in json.loads(line).items() if "per_s" not in k and "time" not in k}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(single_process, two_processes):
    run_dir, proc = two_processes
    one = json.loads((single_process / "summary.json").read_text())
    two = json.loads((run_dir / "summary.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["global_batch"] == one["global_batch"] and two["lr"] == one["lr"]
    assert two["config_hash"] == one["config_hash"]
    assert abs(two["final_top1"] - one["final_top1"]) <= 1.0
    def losses(run):
        return [json.loads(x)["train_loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]

    assert losses(run_dir) == pytest.approx(losses(single_process), rel=1e-3)
    # only rank 0 reports and writes
    assert proc.stdout.count("final top-1") == 1
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".")) == \
        sorted(p.name for p in single_process.iterdir() if not p.name.startswith("."))


def test_accumulation_under_ddp_matches_one_process(single_process, tmp_path):
    """2 gloo processes x 2 accumulated micro-batches (the first under no_sync, the last all-reduced) train as one
    process on the whole global batch: the official --update_freq on several GPUs."""
    run_dir = tmp_path / "ddp-accumulated"
    proc = torchrun(*DETERMINISTIC_BATCHES, "train.accumulation_steps=2", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    one = json.loads((single_process / "summary.json").read_text())
    two = json.loads((run_dir / "summary.json").read_text())
    assert (two["world_size"], two["accumulation_steps"], two["micro_batch"]) == (2, 2, one["global_batch"] // 4)
    assert two["config_hash"] == one["config_hash"] and two["lr"] == one["lr"]
    losses = [[json.loads(x)["train_loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]
              for run in (run_dir, single_process)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)


@pytest.mark.parametrize("processes", [1, 2, 4])
def test_accumulation_auto_meets_the_global_batch_with_1_2_and_4_processes(single_process, tmp_path, processes):
    """train.accumulation_steps=auto with a device batch of 8: 64 = P x 8 x (8 / P), and the run trains as one
    process on the whole batch of 64 (the batches are the same for any split; the model has no BatchNorm)."""
    run_dir = tmp_path / f"auto-{processes}"
    proc = torchrun(*DETERMINISTIC_BATCHES, "train.accumulation_steps=auto", "train.device_batch=8",
                    f"hydra.run.dir={run_dir}", nproc=processes)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    one = json.loads((single_process / "summary.json").read_text())
    run = json.loads((run_dir / "summary.json").read_text())
    assert one["global_batch"] == 64
    assert (run["world_size"], run["micro_batch"], run["accumulation_steps"]) == (processes, 8, 8 // processes)
    assert run["global_batch"] == 64 and run["lr"] == one["lr"] and run["batch_norm_batch"] is None
    line = (f"batch: {processes} process(es) x device batch 8 x {8 // processes} accumulation step(s) = global batch "
            f"64; lr {one['lr']:.4g}; no BatchNorm")
    assert run["batch_plan"] == line and proc.stdout.count(line) == 1  # said at start, by rank 0 only
    losses = [[json.loads(x)["train_loss"] for x in (r / "metrics.jsonl").read_text().splitlines()]
              for r in (run_dir, single_process)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)


def test_a_global_batch_that_cannot_be_met_exactly_is_refused_before_training(tmp_path):
    proc = torchrun(*DETERMINISTIC_BATCHES, "train.accumulation_steps=auto", "train.device_batch=24",
                    f"hydra.run.dir={tmp_path / 'run'}", nproc=2)
    assert proc.returncode != 0  # each rank exits 2; torchrun reports its children's failure
    assert ("the global batch 64 cannot be met exactly with 2 process(es) x device batch 24: 64 / (2 x 24) = 1.333 "
            "micro-batches; use train.device_batch=16 (the largest divisor of 32 below 24)") in proc.stderr
    assert "epoch 1" not in proc.stdout


def test_a_distributed_run_killed_mid_epoch_resumes_to_the_same_result(two_processes, tmp_path):
    run_dir = tmp_path / "ddp"
    args = [*DETERMINISTIC_BATCHES, "train.checkpoint_every_steps=1", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                             "run.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env(), start_new_session=True)
    deadline = time.time() + 300
    while True:
        assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
        try:
            state = torch.load(run_dir / "last.pt", weights_only=True)
        except Exception:  # noqa: BLE001 -- not written yet, or being replaced (atomic rename): retry
            state = None
        if state and state["step_in_epoch"] > 0:
            break
        time.sleep(0.05)
    # torchrun starts its workers in sessions of their own: SIGKILL every process of this run (agent and ranks)
    kill_processes_mentioning(str(run_dir))
    proc.wait()
    assert len(state["rng"]) == 2  # one RNG state per rank
    again = torchrun(*args)
    assert again.returncode == 0 and "resuming" in again.stdout, again.stderr[-3000:]
    uninterrupted, _ = two_processes
    assert metrics(run_dir) == metrics(uninterrupted)  # exactly, epoch by epoch, as in one process
