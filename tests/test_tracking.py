"""Tests for modernize.training.tracking with the real wandb library in offline mode (no network, no mocks)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch
import wandb
from helpers import SMOKE, run_cli
from wandb_offline import read_offline_run

from modernize.training.tracking import MODES, Tracker, resolve_mode

CONFIG = {"seed": 0, "model": {"name": "convnext_t", "depths": [3, 3, 9, 3]}, "recipe": {"lr": 0.004}}
EPOCHS = [{"val/top1": 61.5, "train/loss": 1.25}, {"val/top1": 70.0, "train/loss": 0.75},
          {"val/top1": 72.25, "train/loss": 0.5}]


@pytest.fixture(autouse=True)
def isolated_wandb(tmp_path, monkeypatch):
    """Keep every wandb file and credential lookup inside tmp_path; leave no service process behind."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))  # absent: no credentials
    for var, sub in [("WANDB_DIR", "wandb_dir"), ("WANDB_CACHE_DIR", "cache"),
                     ("WANDB_CONFIG_DIR", "config"), ("WANDB_DATA_DIR", "data")]:
        monkeypatch.setenv(var, str(tmp_path / sub))
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "WANDB_SERVICE", "WANDB_RUN_ID",
                "WANDB_RESUME", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    wandb.teardown()  # wandb caches env-derived settings in a process-wide singleton
    yield
    wandb.teardown()
    assert _wandb_services() == [], "a wandb-core service process was left running"


def _wandb_services() -> list[int]:
    """Ids of live wandb-core processes started by this process (Linux /proc; empty elsewhere)."""
    deadline = time.monotonic() + 5  # teardown asks the service to exit; give it a moment
    while True:
        pids = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                status = (proc / "status").read_text()
            except OSError:
                continue
            zombie = "\nState:\tZ" in status
            if argv and argv[0].endswith(b"wandb-core") and str(os.getpid()).encode() in argv and not zombie:
                pids.append(int(proc.name))
        if not pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.1)


def make_tracker(run_dir: Path, mode: str = "offline", **kwargs) -> Tracker:
    args = {"mode": mode, "project": "modernize-test", "entity": None, "group": "sweep",
            "name": "convnext_t-seed0", "tags": ["test"], "config": CONFIG, "run_dir": run_dir}
    return Tracker(**(args | kwargs))


def test_offline_run_round_trips_config_history_summary_and_table(tmp_path):
    run_dir = tmp_path / "run"
    config = CONFIG | {"notes": "x" * 100_000}  # a record larger than the log's 32 KiB blocks
    tracker = make_tracker(run_dir, config=config)
    assert tracker.mode == "offline"
    assert tracker.run_id
    for epoch, metrics in enumerate(EPOCHS):
        tracker.log(metrics, step=epoch)
    tracker.summary({"best/top1": 72.25, "params_m": 28.6})
    tracker.table("per_class", ["class", "top1"], [["cat", 70.0], ["dog", 74.5]])
    tracker.finish()
    assert tracker.run_id is None and _wandb_services() == []

    run = read_offline_run(run_dir)
    assert run["id"] and run["name"] == "convnext_t-seed0" and run["exit_code"] == 0
    assert run["config"] == config
    assert [{k: row[k] for k in ("_step", *EPOCHS[0])} for row in run["history"]] == [
        {"_step": epoch, **metrics} for epoch, metrics in enumerate(EPOCHS)]
    assert run["summary"]["best/top1"] == 72.25 and run["summary"]["params_m"] == 28.6
    assert run["summary"]["val/top1"] == 72.25  # wandb keeps the last logged value as summary

    # The table joins the last epoch's row as a reference to a json file in the run's files.
    table_ref = run["history"][-1]["per_class"]
    assert table_ref["_type"] == "table-file"
    files_dir = next(run_dir.glob("wandb/offline-run-*/files"))
    table = json.loads((files_dir / table_ref["path"]).read_text())
    assert table["columns"] == ["class", "top1"] and table["data"] == [["cat", 70.0], ["dog", 74.5]]


def test_resumed_run_continues_the_same_run_id(tmp_path):
    run_dir = tmp_path / "run"
    first = make_tracker(run_dir)
    run_id = first.run_id
    first.log(EPOCHS[0], step=0)
    first.finish()

    second = make_tracker(run_dir, run_id=run_id)
    assert second.run_id == run_id
    second.log(EPOCHS[1], step=1)
    second.finish()

    # One directory per session; a second one within the same second gets a "-1" suffix.
    assert len(list(run_dir.glob(f"wandb/offline-run-*-{run_id}*"))) == 2
    history = read_offline_run(run_dir)["history"]
    assert [(row["_step"], row["val/top1"]) for row in history] == [(0, 61.5), (1, 70.0)]


def test_a_new_tracker_never_reuses_an_unfinished_run(tmp_path):
    # A multirun job that died without finishing its run leaves it open in the process; wandb's default
    # reinit would hand that run to the next job's wandb.init.
    first = make_tracker(tmp_path / "first", name="resnet50-seed0")
    first.log(EPOCHS[0], step=0)
    second = make_tracker(tmp_path / "second", name="patchify-seed0")
    assert second.run_id != first.run_id
    second.log(EPOCHS[1], step=0)
    second.finish()

    first_run, second_run = read_offline_run(tmp_path / "first"), read_offline_run(tmp_path / "second")
    assert first_run["id"] != second_run["id"]
    assert (first_run["name"], second_run["name"]) == ("resnet50-seed0", "patchify-seed0")
    assert [row["val/top1"] for row in first_run["history"]] == [EPOCHS[0]["val/top1"]]
    assert [row["val/top1"] for row in second_run["history"]] == [EPOCHS[1]["val/top1"]]


def test_an_exception_inside_the_tracker_finishes_its_run_as_failed_and_propagates(tmp_path):
    with pytest.raises(RuntimeError, match="the loss became nan"):
        with make_tracker(tmp_path / "failed") as tracker:
            tracker.log(EPOCHS[0], step=0)
            raise RuntimeError("the loss became nan")
    assert tracker.run_id is None  # finished, and the service torn down (checked by the fixture)
    failed = read_offline_run(tmp_path / "failed")
    assert failed["exit_code"] == 1 and failed["history"][0]["val/top1"] == EPOCHS[0]["val/top1"]

    with make_tracker(tmp_path / "ok") as tracker:
        tracker.log(EPOCHS[0], step=0)
    assert read_offline_run(tmp_path / "ok")["exit_code"] == 0


@pytest.mark.slow
def test_a_multirun_with_a_failed_job_gives_every_job_its_own_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # helpers.env() would default it to disabled
    sweep = tmp_path / "sweep"
    # resnet50 fails after its first epoch, so after its tracker started: a directory stands where its
    # metrics.jsonl goes. patchify then runs in the same process (Hydra's default basic launcher).
    (sweep / "resnet50-seed0" / "metrics.jsonl").mkdir(parents=True)
    run_cli("-m", "+step=resnet50,patchify", *SMOKE, f"out_root={tmp_path}", "sweep_name=sweep",
            "logger.wandb.mode=offline", check=True)
    assert "IsADirectoryError" in (sweep / "resnet50-seed0" / "failed.json").read_text()

    for job in ("resnet50-seed0", "patchify-seed0"):
        assert len(list((sweep / job).glob("wandb/offline-run-*"))) == 1, job
    failed, ok = read_offline_run(sweep / "resnet50-seed0"), read_offline_run(sweep / "patchify-seed0")
    assert (failed["name"], ok["name"]) == ("resnet50-seed0", "patchify-seed0")
    assert failed["id"] != ok["id"]
    assert (failed["exit_code"], ok["exit_code"]) == (1, 0)
    # patchify's metrics are in its own run only, and its checkpoint points at that run
    assert failed["history"] == [] and "final_top1" not in failed["summary"]
    assert [row["epoch"] for row in ok["history"]] == [1, 2]
    summary = json.loads((sweep / "patchify-seed0" / "summary.json").read_text())
    assert ok["summary"]["final_top1"] == pytest.approx(summary["final_top1"])
    assert torch.load(sweep / "patchify-seed0" / "last.pt", weights_only=True)["wandb_id"] == ok["id"]


@pytest.mark.parametrize("kwargs", [{"mode": "disabled"}, {"mode": "offline", "enabled": False}],
                         ids=["disabled", "not-rank-0"])
def test_disabled_tracker_is_a_no_op_and_writes_nothing(tmp_path, kwargs):
    run_dir = tmp_path / "run"
    tracker = make_tracker(run_dir, **kwargs)
    assert tracker.mode == "disabled" and tracker.run_id is None
    tracker.log(EPOCHS[0], step=0)
    tracker.summary({"best/top1": 1.0})
    tracker.table("t", ["a"], [[1]])
    tracker.finish()
    assert not run_dir.exists()
    assert not any(p.is_file() for p in tmp_path.rglob("*"))
    with pytest.raises(FileNotFoundError):
        read_offline_run(run_dir)


@pytest.mark.parametrize("enabled", [True, False])
def test_invalid_mode_raises_listing_allowed_values(tmp_path, enabled):
    with pytest.raises(ValueError, match="auto, online, offline, disabled"):
        make_tracker(tmp_path / "run", mode="dryrun", enabled=enabled)
    assert not (tmp_path / "run").exists()
    assert MODES == ("auto", "online", "offline", "disabled")


def test_auto_mode_without_api_key_runs_offline(tmp_path):
    tracker = make_tracker(tmp_path / "run", mode="auto")
    assert tracker.mode == "offline"
    tracker.log(EPOCHS[0], step=0)
    tracker.finish()
    assert read_offline_run(tmp_path / "run")["history"][0]["val/top1"] == 61.5


def test_auto_mode_is_online_when_a_key_is_configured(tmp_path, monkeypatch):
    # Only the resolution is checked: starting an online run would need the network.
    assert resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    # `wandb login` stores the key in netrc under the W&B host; wandb 0.31 maps its default host to it.
    netrc = Path(os.environ["NETRC"])
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {'y' * 40}\n")
    netrc.chmod(0o600)
    wandb.teardown()
    assert resolve_mode("auto") == "online"
    for mode in ("online", "offline", "disabled"):
        assert resolve_mode(mode) == mode


def test_failed_online_init_falls_back_to_offline_and_keeps_the_metrics(tmp_path, capfd):
    # Online without any API key: wandb.init raises immediately (no terminal to prompt on under pytest).
    tracker = make_tracker(tmp_path / "run", mode="online")
    assert tracker.mode == "offline" and tracker.run_id is not None
    tracker.log(EPOCHS[0], step=0)
    tracker.finish()
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "logging offline instead" in warnings[0], err
    assert read_offline_run(tmp_path / "run")["history"][0]["val/top1"] == EPOCHS[0]["val/top1"]


def test_failed_init_warns_once_and_disables_logging(tmp_path, capfd):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the run directory should be")
    tracker = make_tracker(blocker / "run", mode="offline")
    assert tracker.mode == "disabled" and tracker.run_id is None
    tracker.log(EPOCHS[0], step=0)
    tracker.summary({"best/top1": 1.0})
    tracker.finish()
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "wandb.init failed" in warnings[0], err


def test_job_type_summary_names_step_metric_and_at_finish_callbacks(tmp_path):
    calls = []
    tracker = make_tracker(tmp_path / "ok", job_type="train", summary_names={"lr": "peak_lr"})
    tracker.define_step_metric("epoch", ["val/*", "lr"])
    tracker.at_finish(lambda: calls.append("ok"))
    tracker.at_finish(lambda: 1 / 0)  # a failing extra warns; the run still finishes
    tracker.log({"lr": 0.1, "epoch": 1}, step=1)
    tracker.summary({"lr": 0.4, "best/top1": 1.0})
    tracker.finish()
    run = read_offline_run(tmp_path / "ok")
    assert run["job_type"] == "train" and run["exit_code"] == 0 and calls == ["ok"]
    assert run["summary"]["peak_lr"] == 0.4 and run["summary"]["lr"] == 0.1 and run["summary"]["best/top1"] == 1.0
    assert run["metrics"] == {"epoch": "", "val/*": "epoch", "lr": "epoch"}

    with pytest.raises(RuntimeError):
        with make_tracker(tmp_path / "failed") as failed:
            failed.at_finish(lambda: calls.append("failed"))
            raise RuntimeError("boom")
    assert calls == ["ok"] and read_offline_run(tmp_path / "failed")["exit_code"] == 1


def test_the_longest_ablation_label_is_logged_with_a_tag_wandb_accepts(tmp_path, capfd):
    """W&B limits tags to 64 characters; the ablation's longest label (76) used to switch W&B off for its run. The
    tag is shortened (start + hash), the full label stays in the run's name and config."""
    from modernize.results.ablation import labels
    from modernize.training.tracking import MAX_TAG_LENGTH, wandb_tag

    label = max(labels(), key=len)
    assert len(label) > MAX_TAG_LENGTH
    tracker = make_tracker(tmp_path / "run", name=f"{label}-seed0", tags=[label, "smoke"],
                           config=CONFIG | {"label": label})
    assert tracker.mode == "offline"  # not disabled
    tracker.log({"val/top1": 50.0}, step=0)
    tracker.finish()
    assert "W&B logging disabled" not in capfd.readouterr().err
    run = read_offline_run(tmp_path / "run")
    assert run["tags"] == [wandb_tag(label), "smoke"] and len(run["tags"][0]) == MAX_TAG_LENGTH
    assert run["tags"][0].startswith("patchify+gelu+fewer_activations") and run["config"]["label"] == label
    assert run["name"] == f"{label}-seed0" and run["history"][0]["val/top1"] == 50.0
    assert wandb_tag(label + "x") != wandb_tag(label) and wandb_tag("gelu") == "gelu"
