"""The two entry points a user meets first: `run.py task=profile` and the notebook API."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from modernize import build_model
from modernize.design.flops import count_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_profile_prints_a_summary_and_ends_with_one_json_line(tmp_path):
    """The ResNet-50 step profiles as torchvision's ResNet-50 (params) and the paper's 4.1 GFLOPs."""
    proc = subprocess.run([sys.executable, "run.py", "task=profile", "+step=resnet50",
                           f"out_root={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["label"] == "resnet50" and result["paper_gflops"] == 4.1
    assert result["params"] == count_params(torchvision.models.resnet50(weights=None))
    assert abs(result["gflops_224"] - 4.1) <= 0.1
    assert any("stage 3: 6 blocks" in line for line in lines)


@pytest.mark.slow
def test_a_step_plus_a_delta_from_the_users_folder_is_labelled_as_what_it_is(tmp_path):
    """`+step=gelu "+delta=[layer_norm]"` is not the paper's gelu row; the folder comes in through the environment."""
    mine = tmp_path / "mine"
    (mine / "delta").mkdir(parents=True)
    (mine / "delta" / "kernel9.yaml").write_text("# @package _global_\nmodel:\n  block: {kernel_size: 9}\n")
    proc = subprocess.run([sys.executable, "run.py", "task=profile", "+step=gelu", "+delta=[layer_norm,kernel9]",
                           f"out_root={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "MODERNIZE_CONFIG_PATH": str(mine)})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["label"] == "gelu+layer_norm+kernel9" and result["paper_top1"] is None
    assert not (tmp_path / "manual").exists()  # task=profile writes nothing, so it leaves no empty run folder


def test_build_model_api_applies_overrides_through_hydra():
    model = build_model("gelu", overrides=["model.block.kernel_size=9"])
    assert isinstance(model, torch.nn.Module)
    assert {b.branch.spatial.kernel_size for b in model.modules() if hasattr(b, "branch")} == {(9, 9)}
    assert count_params(build_model("resnet50")) == count_params(torchvision.models.resnet50(weights=None))


@pytest.mark.slow
def test_help_says_what_to_type_not_the_config(tmp_path):
    """`python run.py --help`: the tasks, examples with a short run, and the config groups with their options."""
    proc = subprocess.run([sys.executable, "run.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for task in ("train", "profile", "eval"):
        assert f"\n  {task} " in text
    assert "profile.epochs=1" in text and "make roadmap" in text
    assert "\nprofile: cpu, gpu, imagenet, smoke\n" in text and "\nstep: " in text and "separate_downsampling" in text
    assert "seed: 0" not in text and "recipe:\n" not in text  # not Hydra's dump of the composed config
