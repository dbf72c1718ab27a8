"""Bad input fails before anything is built, with a message naming the field and what is allowed."""

import subprocess
import sys
from pathlib import Path

import pytest

from modernize import build_model, compose
from modernize.config import model_spec

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
