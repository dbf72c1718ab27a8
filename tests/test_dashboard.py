"""W&B logging fit for comparison and the sweep's workspace (modernize.dashboard), with no network: train and table
runs are read back from their offline files, and --save talks to a mocked W&B API."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest
import wandb
import yaml
from helpers import SMOKE
from wandb_offline import read_offline_run, referenced_keys

from modernize import compose
from modernize.training import wandb_names
from modernize.design.roadmap import STEPS, sort_label, step_index

GOLDEN = Path(__file__).parent / "golden" / "wandb_workspace.json"
needs_workspaces = pytest.mark.skipif(
    importlib.util.find_spec("wandb_workspaces") is None,
    reason="wandb-workspaces is not installed (pip install '.[dashboard]'; `make test` installs it)")


@pytest.fixture
def isolated_wandb(tmp_path, monkeypatch):
    """wandb files and credential lookups inside tmp_path, offline, no service process left behind."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))
    for var, sub in [("WANDB_DIR", "wandb_dir"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config"),
                     ("WANDB_DATA_DIR", "data")]:
        monkeypatch.setenv(var, str(tmp_path / sub))
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    wandb.teardown()
    yield
    wandb.teardown()


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory):
    """A one-run sweep trained in-process (1 epoch, offline W&B), as `make roadmap` leaves it."""
    root = tmp_path_factory.mktemp("dash")
    sweep = root / "runs" / "smoke-sweep"
    env = {"HOME": str(root), "NETRC": str(root / ".netrc"), "WANDB_DIR": str(root / "wandb_dir"),
           "WANDB_CACHE_DIR": str(root / "cache"), "WANDB_CONFIG_DIR": str(root / "config"),
           "WANDB_DATA_DIR": str(root / "data")}
    saved = {k: os.environ.get(k) for k in [*env, "WANDB_API_KEY", "WANDB_MODE"]}
    os.environ.update(env)
    os.environ.pop("WANDB_API_KEY", None)
    os.environ.pop("WANDB_MODE", None)
    wandb.teardown()
    try:
        from modernize.training.train import train

        cfg = compose(["+step=separate_downsampling", *SMOKE, "profile.epochs=1", "data.size=256",
                       "logger.wandb.mode=offline", "logger.wandb.project=dash-test", "sweep_name=smoke-sweep"])
        train(cfg, sweep / "separate_downsampling-seed0")
    finally:
        wandb.teardown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return sweep


# ------------------------------------------------------------------------------------------------ roadmap order
def test_step_index_and_sort_label_follow_the_roadmap_not_the_alphabet():
    labels = [*STEPS, "separate_downsampling+silu", "gelu-recipe", "custom"]
    assert [step_index(s) for s in STEPS] == list(range(len(STEPS)))
    assert step_index("gelu-recipe") == STEPS.index("gelu") + 0.5 and step_index("custom") == len(STEPS)
    ordered = sorted(labels, key=sort_label)
    assert ordered == sorted(labels, key=step_index)
    assert ordered.index("gelu-recipe") == ordered.index("gelu") + 1
    assert ordered[-2:] == ["separate_downsampling+silu", "custom"]
    assert sort_label("resnet50") == "00 resnet50" and sort_label("gelu-recipe") == "09+ gelu-recipe"


# ------------------------------------------------------------------------------------------------ train runs
def test_a_train_run_logs_job_type_roadmap_position_epoch_step_and_unambiguous_summary(smoke_sweep):
    run_dir = smoke_sweep / "separate_downsampling-seed0"
    logged, summary = read_offline_run(run_dir), json.loads((run_dir / "summary.json").read_text())
    assert (logged["job_type"], logged["group"], logged["project"]) == ("train", "smoke-sweep", "dash-test")
    assert logged["config"]["step_index"] == STEPS.index("separate_downsampling")
    assert logged["config"]["step_label"] == "13 separate_downsampling"
    assert logged["config"]["label"] == "separate_downsampling"
    # every epoch-wise key is plotted against the epoch
    assert {key: logged["metrics"][key] for key in wandb_names.EPOCH_KEYS} == dict.fromkeys(wandb_names.EPOCH_KEYS,
                                                                                             "epoch")
    # summary.json keeps its keys; in W&B the ambiguous ones are renamed, so the history's last lr survives
    assert "lr" in summary and "label" in summary and "train_images_per_s" in summary
    assert logged["summary"]["peak_lr"] == pytest.approx(summary["lr"])
    assert logged["summary"]["lr"] == pytest.approx(logged["history"][-1]["lr"])
    assert logged["summary"]["label"] == "separate_downsampling" and "step" not in logged["summary"]
    assert logged["summary"]["median_train_images_per_s"] == pytest.approx(summary["train_images_per_s"])
    assert logged["summary"]["final_top1"] == pytest.approx(summary["final_top1"])
    assert logged["artifacts"] == [] and not (run_dir / "weights.pt").exists()  # weights are opt-in


def test_weights_are_an_artifact_only_when_asked_and_hold_only_model_and_ema(tmp_path, isolated_wandb):
    import torch

    from modernize.training.train import train

    cfg = compose(["+step=resnet50", *SMOKE, "profile.epochs=1", "data.size=128", "recipe.ema_decay=0.9",
                   "logger.wandb.mode=offline", "logger.wandb.log_weights=true", "sweep_name=w"])
    train(cfg, tmp_path / "run")
    (artifact,) = read_offline_run(tmp_path / "run")["artifacts"]
    assert (artifact["name"], artifact["type"], artifact["files"]) == ("w-resnet50-seed0", "model", ["weights.pt"])
    weights = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    assert set(weights) == {"model", "ema", "label", "config_hash"} and weights["ema"] is not None
    assert artifact["metadata"]["ema"] is True


# ------------------------------------------------------------------------------------------------ table run
def _fake_sweep(root: Path, project: str = "proj-x") -> Path:
    sweep = root / "fake-sweep"
    for i, step in enumerate(("resnet50", "recipe", "stage_ratio")):
        run = sweep / f"{step}-seed0"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump({"logger": {"wandb": {"project": project,
                                                                             "entity": None}}}))
        (run / "summary.json").write_text(json.dumps({"step": step, "seed": 0, "final_top1": 70.0 + i,
                                                      "params": 1e6, "gflops_224": 4.0}))
    return sweep


@pytest.mark.slow  # a paper-scale model, seconds
def test_the_table_run_has_a_stable_id_the_configs_project_the_figure_and_a_results_artifact(tmp_path,
                                                                                            isolated_wandb):
    from modernize.results import tabulate

    sweep = _fake_sweep(tmp_path)
    out = tmp_path / "table"
    for _ in range(2):  # tabulating again updates the same run
        assert tabulate.main([str(sweep), "--out", str(out), "--wandb", "offline"]) == 0
        time.sleep(1.1)  # W&B names an offline session's folder by the second and the run id: keep them apart
    sessions = sorted(sweep.glob("wandb/offline-run-*"))
    assert len(sessions) == 2 and all(s.name.endswith(wandb_names.table_run_id("fake-sweep")) for s in sessions)
    logged = read_offline_run(sweep)
    assert logged["id"] == wandb_names.table_run_id("fake-sweep") == "table-fake-sweep-" + logged["id"][-8:]
    assert (logged["job_type"], logged["group"], logged["project"]) == ("table", "fake-sweep", "proj-x")
    assert logged["summary"]["figure"]["_type"] == "image-file"
    assert logged["summary"]["roadmap"]["_type"] == "table-file"
    results = [a for a in logged["artifacts"] if a["type"] == "results"]
    assert len(results) == 2 and results[-1]["name"] == "fake-sweep-results"
    assert {"roadmap.md", "roadmap.csv", "roadmap.png"} <= set(results[-1]["files"])
    # the command line overrides the config's project
    assert tabulate.main([str(sweep), "--out", str(out), "--wandb", "offline", "--project", "other"]) == 0
    newest = max(sweep.glob("wandb/offline-run-*"), key=lambda p: p.stat().st_mtime_ns)
    assert wandb_names.sweep_project(sweep) == ("proj-x", None)
    assert b"other" in next(newest.glob("run-*.wandb")).read_bytes()


# ------------------------------------------------------------------------------------------------ the workspace
@needs_workspaces
def test_the_workspace_layout_is_deterministic_and_matches_the_golden_file():
    from modernize.results.dashboard import build_workspace, to_json, workspace_spec

    def spec() -> str:
        return to_json(workspace_spec(build_workspace("roadmap-cpu-fashion_mnist", "modernize", None, runs=14)))

    text = spec()
    assert text == spec()
    if os.environ.get("MODERNIZE_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "layout changed: rerun with MODERNIZE_UPDATE_GOLDEN=1 and review the diff"
    data = json.loads(text)
    sections = data["spec"]["section"]["panelBankConfig"]["sections"]
    assert [s["name"] for s in sections] == ["Figure 2: top-1 per step", "Curves (mean ± std over seeds, per step)",
                                             "Cost", "Design axes"]
    kinds = [p["viewType"] for s in sections for p in s["panels"]]
    assert {"Bar Chart", "Scatter Plot", "Run History Line Plot", "Parallel Coordinates Plot",
            "Run Comparer"} <= set(kinds)
    runset = data["spec"]["section"]["runSets"][0]
    assert [(f["key"]["name"], f["value"]) for f in runset["filters"]["filters"]] == [
        ("group", "roadmap-cpu-fashion_mnist"), ("jobType", "train")]
    assert runset["grouping"] == [{"name": "step_label.value", "section": "config"}]
    assert data["spec"]["section"]["settings"]["maxRuns"] >= 14


@needs_workspaces
def test_every_key_the_workspace_references_exists_in_a_real_offline_run(smoke_sweep, tmp_path, capsys):
    from modernize.results import dashboard

    assert dashboard.main([str(smoke_sweep), "--out", str(tmp_path)]) == 0  # no network: writes the JSON only
    spec = json.loads((tmp_path / dashboard.SPEC_FILE).read_text())
    assert spec["project"] == "dash-test"  # from the runs' config
    keys = referenced_keys(spec)
    logged = read_offline_run(smoke_sweep / "separate_downsampling-seed0")

    def config_has(path: str) -> bool:
        node = logged["config"]
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    history_keys = {k for row in logged["history"] for k in row}
    assert {"step_label", "step_index", "model.block.kernel_size"} <= keys["config"]
    assert [k for k in sorted(keys["config"]) if not config_has(k)] == []
    assert {"final_top1", "paper_top1", "gflops_224"} <= keys["summary"]
    assert sorted(keys["summary"] - set(logged["summary"])) == []
    assert {"val/top1", "val/loss", "train/loss", "lr", "epoch"} <= keys["history"]
    assert sorted(keys["history"] - history_keys) == []
    assert keys["run"] == {"group", "jobType"}
    filters = {f["key"]["name"]: f["value"] for f in spec["spec"]["section"]["runSets"][0]["filters"]["filters"]}
    assert filters == {"group": logged["group"], "jobType": logged["job_type"]}


@needs_workspaces
def test_save_sends_exactly_the_spec_written_offline_and_sync_uploads_the_offline_runs(smoke_sweep, tmp_path,
                                                                                      monkeypatch, capsys):
    import wandb_workspaces.workspaces.internal as ws_internal

    from modernize.results import dashboard

    class FakeApi:  # the W&B API boundary: no network
        default_entity = "me"

        class client:  # noqa: N801 -- the attribute wandb.Api has
            app_url = "https://wandb.example"

    sent, synced = [], []
    monkeypatch.setattr(wandb, "Api", FakeApi)
    monkeypatch.setattr(ws_internal, "execute_graphql", lambda api, query, variables: sent.append(variables) or {
        "upsertView": {"view": {"id": "view-id", "name": "nw-abc123-v"}, "inserted": True}})
    monkeypatch.setattr(dashboard.subprocess, "run", lambda command: synced.append(command) or
                        type("Done", (), {"returncode": 0})())
    assert dashboard.main([str(smoke_sweep), "--out", str(tmp_path), "--sync", "--save"]) == 0
    written = json.loads((tmp_path / dashboard.SPEC_FILE).read_text())
    (variables,) = sent
    assert json.loads(variables["spec"]) == written["spec"]
    assert (variables["entityName"], variables["projectName"], variables["displayName"]) == (
        "me", "dash-test", "modernize smoke-sweep") == (written["entity"], written["project"], written["name"])
    assert "saved: https://wandb.example/me/dash-test?nw=abc123" in capsys.readouterr().out
    (command,) = synced
    assert command[1:4] == ["-m", "wandb", "sync"] and command[command.index("--project") + 1] == "dash-test"
    assert [Path(p).name for p in command if "offline-run-" in p] == [
        p.name for p in sorted(smoke_sweep.glob("*/wandb/offline-run-*"))]
