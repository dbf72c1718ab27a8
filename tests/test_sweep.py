"""The sweep runner with real Hydra multirun on the smoke profile: tabulate, skip, resume, failure isolation."""

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import ROOT, SMOKE, env, popen_cli, run_cli
from wandb_offline import read_offline_run

from modernize.training.launch import launch_overrides, measured_runs_at_once, runs_that_fit
from modernize.results.roadmap_table import roadmap_rows as summarize
from modernize.results.stats import welch_p_value

pytestmark = pytest.mark.slow  # real Hydra multiruns and `python -m modernize.tabulate` processes

STEPS = "resnet50,patchify,separate_downsampling"


def multirun(out_root, sweep="sweep", *extra):
    return ["-m", f"+step={STEPS}", *SMOKE, "profile.epochs=2", "train.checkpoint_every_steps=1",
            f"out_root={out_root}", f"sweep_name={sweep}", *extra]


def tabulate(sweep_dir, out_dir, *extra):
    return subprocess.run([sys.executable, "-m", "modernize.tabulate", str(sweep_dir), "--out", str(out_dir), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env())


def read_rows(path):
    with open(path) as f:
        return {row["step"]: row for row in csv.DictReader(f)}


RESULT_COLUMNS = ("n", "failed", "top1_mean", "top1_std", "delta", "paper_top1", "params", "gflops_224", "gflops_run")


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    run_cli(*multirun(root), check=True, timeout=600)
    proc = tabulate(root / "sweep", root / "table", "--wandb", "offline")
    assert proc.returncode == 0, proc.stderr
    return root


def test_sweep_writes_table_csv_and_figure_in_roadmap_order(finished_sweep):
    rows = read_rows(finished_sweep / "table" / "roadmap.csv")
    assert list(rows) == STEPS.split(",")
    assert rows["resnet50"]["paper_top1"] == "76.1" and rows["separate_downsampling"]["paper_top1"] == "82.0"
    # each row reports its run's own final top-1 (smoke runs are near chance, so no level is asserted)
    for step, row in rows.items():
        summary = json.loads((finished_sweep / "sweep" / f"{step}-seed0" / "summary.json").read_text())
        assert row["n"] == "1" and float(row["top1_mean"]) == pytest.approx(summary["final_top1"], abs=1e-4)
    assert rows["patchify"]["delta"] != "" and rows["resnet50"]["delta"] == ""
    markdown = (finished_sweep / "table" / "roadmap.md").read_text()
    assert "| separate_downsampling |" in markdown and "same direction" in markdown
    # every roadmap table opens with its fidelity line, and carries it as CSV too
    assert markdown.splitlines()[2].startswith("**Fidelity (1 seed): decisive steps ")
    fidelity_rows = list(csv.DictReader(open(finished_sweep / "table" / "fidelity.csv")))
    assert len(fidelity_rows) == 1 and fidelity_rows[0]["line"] in markdown
    png = (finished_sweep / "table" / "roadmap.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_the_table_is_logged_to_wandb_as_a_table(finished_sweep):
    logged = read_offline_run(finished_sweep / "sweep")
    assert logged["summary"]["roadmap"]["_type"] == "table-file"
    assert logged["summary"]["fidelity"]["_type"] == "table-file"
    assert logged["summary"]["fidelity/line"].startswith("Fidelity (1 seed)")
    assert logged["config"]["sweep"] == "sweep"


def test_running_the_sweep_again_skips_finished_runs(finished_sweep):
    summaries = {p: p.read_text() for p in (finished_sweep / "sweep").glob("*/summary.json")}
    proc = run_cli(*multirun(finished_sweep), check=True, timeout=600)
    assert proc.stdout.count("already finished") == 3
    assert {p: p.read_text() for p in summaries} == summaries


def test_killing_the_sweep_and_running_it_again_gives_the_same_table(finished_sweep, tmp_path):
    proc = popen_cli(*multirun(tmp_path))
    deadline = time.time() + 300
    # kill while the second run is in the middle of its training (the first one is finished)
    while not list((tmp_path / "sweep").glob("patchify-seed0/last.pt")):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = {p.parent.name for p in (tmp_path / "sweep").glob("*/summary.json")}
    assert "patchify-seed0" not in finished_before
    again = run_cli(*multirun(tmp_path), check=True, timeout=600)
    assert "resuming patchify" in again.stdout
    assert tabulate(tmp_path / "sweep", tmp_path / "table").returncode == 0
    ours, reference = read_rows(tmp_path / "table" / "roadmap.csv"), read_rows(finished_sweep / "table" / "roadmap.csv")
    for step in reference:
        assert {c: ours[step][c] for c in RESULT_COLUMNS} == {c: reference[step][c] for c in RESULT_COLUMNS}


def test_one_failing_step_does_not_stop_the_others_and_is_rerun(tmp_path):
    broken = tmp_path / "sweep" / "patchify-seed0"
    broken.mkdir(parents=True)
    (broken / "last.pt").write_bytes(b"garbage")
    run_cli(*multirun(tmp_path), check=True, timeout=600)
    assert (tmp_path / "sweep" / "resnet50-seed0" / "summary.json").exists()
    assert (tmp_path / "sweep" / "separate_downsampling-seed0" / "summary.json").exists()
    proc = tabulate(tmp_path / "sweep", tmp_path / "table")
    assert proc.returncode == 1
    row = read_rows(tmp_path / "table" / "roadmap.csv")["patchify"]
    assert row["failed"] == "1" and "is corrupt" in row["error"]
    assert "failed: RunError: checkpoint" in (tmp_path / "table" / "roadmap.md").read_text()

    (broken / "last.pt").unlink()
    again = run_cli(*multirun(tmp_path), check=True, timeout=600)
    assert again.stdout.count("already finished") == 2
    assert not (broken / "failed.json").exists() and (broken / "summary.json").exists()
    assert tabulate(tmp_path / "sweep", tmp_path / "table").returncode == 0


def _summary(step, top1, seed):
    return {"status": "ok", "label": step, "seed": seed, "final_top1": top1, "params": 1, "gflops_224": 1.0}


def test_a_change_is_significant_only_when_it_exceeds_the_seed_noise():
    clear = {"resnet50": [_summary("resnet50", v, i) for i, v in enumerate([70.0, 70.2, 69.9])],
             "recipe": [_summary("recipe", v, i) for i, v in enumerate([75.0, 75.3, 74.8])]}
    row = summarize(clear)[1]
    assert row["significant"] is True and row["change"] == pytest.approx(5.0, abs=0.01)
    assert row["agrees"] == "yes"  # the paper's recipe step also goes up (76.1 -> 78.8)
    noisy = {"resnet50": [_summary("resnet50", v, i) for i, v in enumerate([70.0, 72.0, 68.0])],
             "recipe": [_summary("recipe", v, i) for i, v in enumerate([70.5, 68.5, 72.5])]}
    assert summarize(noisy)[1]["significant"] is False
    assert welch_p_value([1.0], [2.0]) is None  # one seed: no test


def test_two_seeds_are_never_called_significant():
    """Two sweeps of two seeds whose per-seed differences are equal once printed "[+4.69, +4.69], p 0.000,
    significant yes": a t-test over a difference without variance. With fewer than 3 seeds, or no variance, no
    test and no interval are reported, in every table (they all take their tests from modernize.results.stats)."""
    from modernize.results.stats import interval, paired_p_value

    two = {"resnet50": [_summary("resnet50", v, i) for i, v in enumerate([70.0, 71.0])],
           "recipe": [_summary("recipe", v, i) for i, v in enumerate([74.69, 75.69])]}
    row = summarize(two)[1]
    assert row["change"] == pytest.approx(4.69) and row["p_value"] is None and row["significant"] is None
    assert paired_p_value({0: 74.69, 1: 75.69}, {0: 70.0, 1: 71.0}) is None
    mean, low, high = interval([4.69, 4.69])
    assert mean == pytest.approx(4.69) and math.isnan(low) and math.isnan(high)
    # three seeds, every one 0.4 better (up to float rounding): no variance, so still nothing to test
    same_gain = {0: 80.7, 1: 80.9, 2: 80.6}, {0: 80.3, 1: 80.5, 2: 80.2}
    assert paired_p_value(*same_gain) is None and math.isnan(interval([0.4, 0.4, 0.4])[1])
    assert welch_p_value([75.0, 75.0, 75.0], [70.0, 70.0, 70.0]) is None
    assert welch_p_value([75.0, 75.1], [70.0, 70.2]) is None  # two seeds a side
    # three seeds that vary: tested
    assert paired_p_value({0: 75.0, 1: 75.3, 2: 74.8}, {0: 70.0, 1: 70.2, 2: 69.9}) < 0.05


def test_tabulate_rejects_a_folder_that_is_not_a_sweep(tmp_path):
    proc = tabulate(tmp_path / "missing", tmp_path / "out")
    assert proc.returncode == 2 and "is not a sweep folder" in proc.stderr
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_kernel_sweep_gets_one_row_per_kernel_size_with_the_papers_numbers(tmp_path):
    from modernize.training.runs import collect

    for kernel, top1 in ((3, 60.0), (7, 62.0), (11, 61.0)):
        run = tmp_path / f"k{kernel}-seed0"
        run.mkdir()
        (run / "summary.json").write_text(json.dumps(_summary("kernel_size", top1, 0) | {"kernel_size": kernel}))
    table = summarize(collect(tmp_path, by_kernel=True))
    assert [r["label"] for r in table] == ["kernel_size k=3", "kernel_size k=7", "kernel_size k=11"]
    assert [r["paper_top1"] for r in table] == [79.9, 80.6, 80.6]
    assert table[1]["change"] == pytest.approx(2.0) and table[1]["agrees"] == "yes"


# --------------------------------------------------------------------------- your own delta in the same sweep
SILU = "# @package _global_\n# Not in the paper: SiLU instead of GELU.\nmodel:\n  block: {activation: silu}\n"


def test_a_delta_from_a_folder_outside_the_repo_gets_its_own_row_after_the_roadmap(tmp_path):
    mine = tmp_path / "my-deltas"
    (mine / "delta").mkdir(parents=True)
    (mine / "delta" / "silu.yaml").write_text(SILU)
    # the roadmap's last step and it with silu, in one sweep: "+delta=[]" adds nothing, so that run is the step's own
    run_cli("-m", "+step=separate_downsampling", "+delta=[],[silu]", f"hydra.searchpath=[file://{mine}]", *SMOKE,
            "profile.epochs=1", f"out_root={tmp_path}", "sweep_name=mine", check=True, timeout=600)
    summary = json.loads((tmp_path / "mine" / "separate_downsampling+silu-seed0" / "summary.json").read_text())
    assert summary["label"] == "separate_downsampling+silu"
    assert tabulate(tmp_path / "mine", tmp_path / "table").returncode == 0
    rows = read_rows(tmp_path / "table" / "roadmap.csv")
    assert list(rows) == ["separate_downsampling", "separate_downsampling+silu"]
    base, custom = rows["separate_downsampling"], rows["separate_downsampling+silu"]
    assert float(custom["delta"]) == pytest.approx(float(custom["top1_mean"]) - float(base["top1_mean"]), abs=1e-3)
    assert custom["paper_top1"] == "" and custom["params"] == base["params"]  # an activation has no parameters
    assert "| separate_downsampling+silu |" in (tmp_path / "table" / "roadmap.md").read_text()


def test_make_roadmaps_extra_labels_train_the_runs_those_labels_name(tmp_path):
    """EXTRA="separate_downsampling+silu" becomes "+delta=[<its deltas>]": the same config (and hash, and folder)
    as +step=separate_downsampling "+delta=[silu]"."""
    from modernize.design.config import compose
    from modernize.training.identity import config_hash

    (tmp_path / "delta").mkdir()
    (tmp_path / "delta" / "silu.yaml").write_text(SILU)
    searchpath = f"hydra.searchpath=[file://{tmp_path}]"
    lists = subprocess.run([sys.executable, "-m", "modernize.sweep", "--delta-lists", "separate_downsampling",
                            "separate_downsampling+silu"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           check=True, env={**os.environ, "MODERNIZE_CONFIG_PATH": str(tmp_path)}).stdout.strip()
    plain, with_silu = (compose([f"+delta={one}]", searchpath]) for one in lists[:-1].split("],"))
    assert config_hash(plain) == config_hash(compose(["+step=separate_downsampling"]))
    assert config_hash(with_silu) == config_hash(compose(["+step=separate_downsampling", "+delta=[silu]",
                                                          searchpath]))
    assert with_silu.label == "separate_downsampling+silu"


def test_rows_made_of_deltas_follow_the_roadmap_and_compare_with_the_step_they_extend():
    runs = {name: [_summary(name, top1, 0)] for name, top1 in (
        ("gelu+layer_norm", 64.0), ("custom", 50.0), ("resnet50", 60.0), ("resnet50+gelu", 61.0), ("gelu", 63.0),
        ("recipe", 62.0))}
    table = summarize(runs)
    assert [r["label"] for r in table] == ["resnet50", "recipe", "gelu", "resnet50+gelu", "gelu+layer_norm", "custom"]
    by_step = {r["label"]: r for r in table}
    assert by_step["gelu+layer_norm"]["change"] == pytest.approx(1.0)  # against gelu, not the row above it
    assert by_step["resnet50+gelu"]["change"] == pytest.approx(1.0)
    assert by_step["gelu+layer_norm"]["paper_top1"] is None and by_step["custom"]["change"] is None


# ------------------------------------------------------------------------------------------ runs at once on a device
def test_a_profiles_runs_at_once_becomes_the_launcher():
    """One at a time is Hydra's basic launcher; N at once is joblib with N jobs sharing the cores as torch threads;
    an explicit launcher is used as given; `auto` is 1 without CUDA."""
    cores = os.cpu_count() or 1
    assert launch_overrides("cpu") == ["hydra/launcher=basic"]
    assert launch_overrides("smoke", runs_at_once=2) == [
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"train.threads={max(1, cores // 2)}"]
    assert launch_overrides("gpu", launcher="slurm") == ["hydra/launcher=slurm"]
    if not torch.cuda.is_available():
        assert launch_overrides("gpu") == ["hydra/launcher=basic"]
    with pytest.raises(ValueError, match="runs at once must be a positive integer, got 0"):
        launch_overrides("gpu", runs_at_once=0)


def test_as_many_runs_as_the_free_memory_holds_and_no_more_than_the_cores():
    gib = 1 << 30
    # an H200's ~139 GiB free, a step peaking at 8 GiB: (8 x 1.25 + 1) GiB each -> 12, capped by 16 cores
    assert runs_that_fit(139 * gib, 8 * gib, cores=16) == 12
    assert runs_that_fit(139 * gib, 1 * gib, cores=16) == 16
    assert runs_that_fit(20 * gib, 30 * gib, cores=16) == 1  # never fewer than one: the run itself says if it fits


@pytest.mark.skipif(not torch.cuda.is_available(), reason="measures a CUDA device's memory")
def test_auto_measures_the_profiles_steps_on_the_gpu():
    assert measured_runs_at_once("smoke") >= 1


def test_make_passes_the_launch_the_profile_asks_for():
    proc = subprocess.run([sys.executable, "-m", "modernize.sweep", "--launch", "smoke", "--runs-at-once", "3"],
                          cwd=ROOT, capture_output=True, text=True, env=env())
    assert proc.returncode == 0 and proc.stdout.split()[:2] == ["hydra/launcher=joblib", "hydra.launcher.n_jobs=3"]
    proc = subprocess.run([sys.executable, "-m", "modernize.sweep", "--launch", "laptop"], cwd=ROOT,
                          capture_output=True, text=True, env=env())
    assert proc.returncode == 2 and "unknown profile 'laptop'; known profiles: cpu, gpu, imagenet, smoke" in proc.stderr

