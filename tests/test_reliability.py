"""Issue 11: no lost or misfiled result under concurrency, signals, full disks and bad files."""

import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, SMOKE, env, fast_tier, popen_cli, run_cli

from modernize import compose
from modernize.training.interrupt import Interrupted
from modernize.training.lock import RunDirBusy, run_lock
from modernize.training.runtime import RunError
from modernize.training.train import train

QUIET = [*SMOKE, "logger.wandb.mode=disabled"]
RUN = ["+step=separate_downsampling", *QUIET, "profile.epochs=2", "data.size=512"]  # 2 epochs x 4 steps


def metrics(run_dir):  # everything but timings
    return [{k: v for k, v in json.loads(line).items() if "per_s" not in k and "time" not in k}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def same_result(a, b):
    assert metrics(a) == metrics(b)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert all(sa[k] == sb[k] for k in ("final_top1", "final_top5", "best_top1", "config_hash"))
    wa, wb = (torch.load(d / "last.pt", weights_only=True)["model"] for d in (a, b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    train(compose(RUN), run_dir)
    return run_dir


# ----------------------------------------------------------------------------------------- 1. one run per folder
def test_a_second_run_in_a_held_folder_refuses_at_once_naming_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    with run_lock(run_dir), pytest.raises(RunDirBusy) as info:
        train(compose(["+step=resnet50", *QUIET]), run_dir)
    assert f"PID {os.getpid()} on host {socket.gethostname()}" in str(info.value)
    assert {p.name for p in run_dir.iterdir()} == {".lock"}  # nothing written by the refused run


def test_a_stale_lock_file_of_a_killed_run_does_not_block(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").write_text("PID 999999 on host gone\n")  # left behind, nobody holds the flock
    summary = train(compose(["+step=resnet50", *QUIET, "profile.epochs=1"]), run_dir)
    assert summary["seed"] == 0 and (run_dir / "summary.json").exists()
    with run_lock(run_dir):  # released when the run ended
        pass


@pytest.mark.slow
def test_two_runs_started_together_in_one_folder_keep_one_result_and_one_refuses(tmp_path):
    """The issue's reproduction: before, both exited 0 and config.yaml could hold the other run's seed."""
    run_dir = tmp_path / "same"
    common = ["+step=resnet50", *QUIET, f"hydra.run.dir={run_dir}"]
    procs = [popen_cli(*common, "profile.epochs=3"), popen_cli(*common, "profile.epochs=1", "seed=1")]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], outs
    loser = outs[codes.index(2)]
    assert "is in use by PID" in loser and "Traceback" not in loser
    summary = json.loads((run_dir / "summary.json").read_text())
    assert f"seed: {summary['seed']}\n" in (run_dir / "config.yaml").read_text()


# ------------------------------------------------------------------------------------------------- 2. signals
def _signal_at_call(monkeypatch, signum, call):
    """Send signum to this process while the run prepares its `call`-th training batch."""
    import modernize.training.train as train_module

    real, calls = train_module.prepare_batch, []

    def prepare(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "prepare_batch", prepare)


SIGNAL_CASES = [
    (signal.SIGTERM, 7, "epoch 2 step 3/4"),  # mid-epoch: a checkpoint at the step, not at the epoch's start
    (signal.SIGINT, 2, "epoch 1 step 2/4"),
    (signal.SIGUSR1, 4, "the end of epoch 1"),  # during the epoch's last step: the epoch's own checkpoint
]


@pytest.mark.parametrize("signum,call,where", fast_tier(SIGNAL_CASES, SIGNAL_CASES[:1]))
def test_a_signal_saves_at_the_step_and_the_rerun_ends_as_if_never_stopped(tmp_path, monkeypatch, reference, signum,
                                                                          call, where):
    run_dir = tmp_path / "run"
    _signal_at_call(monkeypatch, signum, call)
    with pytest.raises(Interrupted) as info:
        train(compose(RUN), run_dir)
    name = signal.Signals(signum).name
    assert str(info.value) == (f"interrupted by {name} at {where}; saved {run_dir / 'last.pt'}; run the same command "
                               f"to resume")
    assert info.value.exit_code == 128 + signum
    assert not (run_dir / "summary.json").exists()
    assert signal.getsignal(signum) is not None and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    monkeypatch.undo()
    train(compose(RUN), run_dir)
    same_result(reference, run_dir)


def test_the_stop_hands_over_to_a_handler_installed_before_and_marks_wandb_preempting():
    from modernize.training.interrupt import SignalWatch

    seen = []

    class Tracker:
        def mark_preempting(self):
            seen.append("preempting")

    watch = SignalWatch()
    watch.previous[signal.SIGUSR2] = lambda signum, frame: seen.append(signum)  # submitit's requeue
    watch._handle(signal.SIGUSR2, None)
    error = watch.stop("epoch 1 step 1/2", "last.pt", Tracker())
    assert seen == ["preempting", signal.SIGUSR2] and error.exit_code == 128 + signal.SIGUSR2


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_cli_stopped_by_a_signal_prints_one_line_and_resumes_exactly(tmp_path, reference, signum):
    run_dir = tmp_path / "run"
    proc = popen_cli(*RUN, "train.log_every_steps=1", f"hydra.run.dir={run_dir}")
    output = []
    for line in proc.stdout:  # plain progress lines: "epoch 2/2 3/4 loss=..."
        output.append(line)
        if line.startswith("epoch 2/2 2/4"):
            os.killpg(proc.pid, signum)
            break
    output += proc.stdout.readlines()
    assert proc.wait(timeout=120) == 128 + signum, "".join(output)
    text = "".join(output)
    assert "Traceback" not in text
    stopped = re.search(rf"interrupted by {signal.Signals(signum).name} at (epoch 2 step \d/4);", text)
    assert stopped and "run the same command to resume" in text
    again = run_cli(*RUN, f"hydra.run.dir={run_dir}", check=True)
    # the resume names the place the interrupt named, counted the same way
    assert f"resuming separate_downsampling from {run_dir / 'last.pt'} after {stopped[1]}\n" in again.stdout
    same_result(reference, run_dir)


# --------------------------------------------------------------------------------------------- 3. bad images
def _image_folder(root, bad):
    from PIL import Image

    for split, n in (("train", 12), ("val", 4)):
        for c in range(2):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (40, 40), (100 * c, 50, 10 * i)).save(folder / f"{i}.jpg")
    path = root / "train" / "c1" / "3.jpg"
    if bad == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_text("not an image, named .jpg")
    return path


@pytest.mark.parametrize("bad", ["truncated", "not an image"])
def test_a_bad_image_stops_the_run_with_one_line_naming_the_file(tmp_path, bad):
    from modernize.data.datasets import DataError, check_images

    path = _image_folder(tmp_path / "data", bad)
    cfg = compose(["+step=resnet50", *QUIET, "data=imagefolder", f"data.root={tmp_path / 'data'}", "train.workers=2",
                   "profile.batch_size=8", "profile.epochs=1"])
    with pytest.raises(DataError) as info:
        train(cfg, tmp_path / "run")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path} is not a readable image")
    assert "replace or delete it" in message and "Traceback" not in message
    assert not (tmp_path / "run" / "summary.json").exists()
    assert [line.split(" is not")[0] for line in check_images(tmp_path / "data")] == [str(path)]


def test_checking_a_folder_that_is_not_an_image_folder_is_one_line(tmp_path, capsys):
    """`python -m modernize.datasets --check` on Fashion-MNIST's folder (idx files) or an empty split: one line
    saying what --check reads, exit 2, no traceback."""
    from files import write_fashion_mnist

    from modernize.data.datasets import main

    write_fashion_mnist(tmp_path / "fashion", n_train=4, n_val=4, gz=True)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "val").mkdir()
    for root, why in ((tmp_path / "fashion", "it has no train/ and no val/ folder"),
                      (tmp_path / "empty", "Couldn't find any class folder")):
        assert main(["--check", str(root)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("error: --check reads an image folder") and f"{root} is not one: {why}" in line


# ---------------------------------------------------------------------------------------- 4. Fashion-MNIST files
def test_a_data_root_without_the_files_never_falls_back_to_another_copy(tmp_path, monkeypatch):
    from files import write_fashion_mnist

    from modernize.data import datasets

    write_fashion_mnist(tmp_path / "system", 6, 2, gz=True)  # a good copy elsewhere must not be used
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")
    (tmp_path / "empty").mkdir()
    with pytest.raises(datasets.DataError, match="lacks Fashion-MNIST's train-images"):
        datasets.load_data("fashion_mnist", tmp_path / "empty", resolution=28, download=False)
    assert len(datasets.load_data("fashion_mnist", None, resolution=28, download=False).train) == 6


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_damaged_gz_idx_file_is_named(tmp_path, damage):
    from files import write_fashion_mnist

    from modernize.data import datasets

    write_fashion_mnist(tmp_path, 6, 2, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] if damage == "truncated" else data[:10] + b"\xff" * 40 + data[50:])
    with pytest.raises(datasets.DataError) as info:
        datasets.load_data("fashion_mnist", tmp_path, resolution=28, download=False)
    assert str(path) in str(info.value) and "re-fetch" in str(info.value)


# -------------------------------------------------------------------------------------- 6. full disk, no access
def test_a_full_disk_while_saving_is_one_line_naming_the_path_and_keeps_the_previous_checkpoint(
        tmp_path, monkeypatch, capsys):
    from modernize.training.cli import run_task

    real_save, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 2:  # the second epoch's checkpoint: what torch's C++ writer raises on ENOSPC
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        run_task(compose(["+step=resnet50", *QUIET]), run_dir, multirun=False)
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: cannot write {run_dir / 'last.pt'}: write failed (disk full or quota exceeded?); the "
                     f"previous file (if any) is kept. Free space or fix the folder's permissions, then run the same "
                     f"command again"]
    monkeypatch.undo()
    assert torch.load(run_dir / "last.pt", weights_only=True)["epoch"] == 1  # the previous one, whole
    assert not (run_dir / "summary.json").exists() and not list(run_dir.glob(".*.tmp"))


@pytest.mark.slow
def test_a_file_size_limit_hit_by_the_real_writer_is_one_line(tmp_path):
    """A real write failure (RLIMIT_FSIZE: EFBIG, like ENOSPC) inside torch.save, through the CLI."""
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "run.py", "+step=resnet50", *QUIET, "profile.epochs=1",
                           f"hydra.run.dir={run_dir}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=env(), preexec_fn=limit)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"error: cannot write {run_dir / 'last.pt'}" in proc.stderr
    assert not (run_dir / "last.pt").exists() and not list(run_dir.glob(".*.tmp"))


@pytest.mark.slow
def test_an_uncreatable_run_directory_is_one_line_not_a_hydra_traceback(tmp_path):
    (tmp_path / "file").write_text("")
    proc = run_cli("+step=resnet50", *QUIET, f"hydra.run.dir={tmp_path / 'file' / 'run'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"error: cannot create the run directory {tmp_path / 'file' / 'run'}: Not a "
                                   f"directory; pass a writable hydra.run.dir=... or out_root=...")


# ------------------------------------------------------------------------------------------------- 7. tabulate
def _config(run, overrides):
    from omegaconf import OmegaConf

    from modernize.training.identity import config_hash

    cfg = compose(overrides)
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return config_hash(cfg)


def test_tabulate_reports_corrupt_and_misplaced_runs_as_failed_rows_and_never_crashes(tmp_path, capsys):
    from modernize.results import tabulate
    from modernize.training.runs import collect

    sweep = tmp_path / "sweep"
    good = {"final_top1": 50.0, "final_top5": 90.0, "seed": 0}
    gelu_hash = _config(sweep / "gelu-seed0", ["+step=gelu", *QUIET])
    (sweep / "gelu-seed0" / "summary.json").write_text(json.dumps(good | {"label": "gelu", "config_hash": gelu_hash}))
    _config(sweep / "patchify-seed0", ["+step=patchify", *QUIET])  # a copy of gelu's summary lands here
    (sweep / "patchify-seed0" / "summary.json").write_text(json.dumps(good | {"label": "gelu",
                                                                               "config_hash": gelu_hash}))
    for name, content in (("resnet50-seed0", "{oops"), ("recipe-seed0", "[1, 2]")):
        (sweep / name).mkdir()
        (sweep / name / "summary.json").write_text(content)
    (sweep / "depthwise-seed0" / "summary.json").mkdir(parents=True)
    rows = collect(sweep)
    assert [r["status"] for r in rows["gelu"]] == ["ok"]
    errors = {step: rows[step][0]["error"] for step in ("patchify", "resnet50", "recipe", "depthwise")}
    assert all(rows[step][0]["status"] == "failed" for step in errors)
    assert "summary.json is of label 'gelu', but this run directory is label 'patchify'" in errors["patchify"]
    assert "summary.json is unreadable (JSONDecodeError" in errors["resnet50"]
    assert "resnet50-seed0" in errors["resnet50"]
    assert "holds a JSON list" in errors["recipe"] and "IsADirectoryError" in errors["depthwise"]
    assert tabulate.main([str(sweep), "--out", str(tmp_path / "out")]) == 1
    assert "patchify: 0 failed" not in capsys.readouterr().err


def test_a_summary_of_another_config_in_the_folder_is_not_counted(tmp_path):
    from modernize.training.runs import collect

    run = tmp_path / "sweep" / "gelu-seed0"
    _config(run, ["+step=gelu", *QUIET])
    (run / "summary.json").write_text(json.dumps({"final_top1": 1.0, "label": "gelu", "seed": 0,
                                                  "config_hash": "0123456789ab"}))
    (result,) = collect(tmp_path / "sweep")["gelu"]
    assert result["status"] == "failed" and "is of another config (hash 0123456789ab" in result["error"]


def test_a_run_written_before_the_label_was_named_so_reads_as_its_label_with_its_hash(tmp_path):
    """Configs and checkpoints of then called the label "step_name", summaries "step": one reader
    (modernize.design.config.recorded_label) reads them, and the hash is the one they were written with."""
    from omegaconf import OmegaConf

    from modernize.training.identity import config_hash
    from modernize.training.runs import collect

    run = tmp_path / "sweep" / "gelu-seed0"
    chash = _config(run, ["+step=gelu", *QUIET])
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("\nlabel: gelu\n", "\nstep_name: gelu\n"))
    assert "step_name: gelu" in config.read_text()
    (run / "summary.json").write_text(json.dumps({"final_top1": 1.0, "step": "gelu", "seed": 0,
                                                  "config_hash": chash}))
    (result,) = collect(tmp_path / "sweep")["gelu"]
    assert result["status"] == "ok" and result["label"] == "gelu" and "step" not in result
    assert config_hash(OmegaConf.load(config)) == chash


def test_a_rerun_over_a_corrupt_summary_names_the_file(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text("")
    with pytest.raises(RunError, match=f"{run_dir / 'summary.json'} is unreadable"):
        train(compose(["+step=resnet50", *QUIET]), run_dir)


# --------------------------------------------------------------------------- 8. a refused run writes nothing
@pytest.mark.slow
def test_a_refused_run_in_a_finished_runs_folder_changes_nothing_there(tmp_path):
    run_dir = tmp_path / "run"
    run_cli("+step=resnet50", *QUIET, "profile.epochs=1", f"hydra.run.dir={run_dir}", check=True)
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    proc = run_cli("+step=resnet50", *QUIET, "profile.epochs=1", "recipe.lr=-1", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: recipe.lr must be")
    assert {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert not (run_dir / ".hydra").exists() and not (run_dir / "run.log").exists()


# ----------------------------------------------------------------------------------------------------- 9. misc
def test_a_diverging_run_without_a_checkpoint_does_not_claim_one_is_kept(tmp_path):
    from modernize.training.train import TrainingDiverged

    with pytest.raises(TrainingDiverged) as info:
        train(compose(["+step=resnet50", *QUIET, "recipe.lr=1e30"]), tmp_path / "run")
    assert "No checkpoint had been saved yet" in str(info.value) and "is kept" not in str(info.value)


def test_an_emptied_metrics_file_is_rebuilt_from_the_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose(["+step=resnet50", *QUIET])
    train(cfg, run_dir)
    before = (run_dir / "metrics.jsonl").read_text()
    (run_dir / "metrics.jsonl").write_text("")
    train(cfg, run_dir)  # finished: skipped, and the metrics come back from last.pt's history
    assert (run_dir / "metrics.jsonl").read_text() == before
