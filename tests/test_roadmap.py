"""The roadmap of the paper's Figure 2: every step's FLOPs and its structure."""

import pytest
import torch
from torch import nn

import copy
import json
import subprocess
import sys
from pathlib import Path

from helpers import REPRESENTATIVE_STEPS, fast_tier
from modernize import DELTAS, STEPS, ModelSpec, compose
from modernize.design.config import config_names, model_spec
from modernize.training.identity import config_hash
from modernize.design.flops import count_gflops, count_params
from modernize.design.model import Block, LayerNorm2d, LayerScale, PointwiseConv, build
from modernize.design.roadmap import (base_step, deltas_up_to, label_deltas, leave_one_out, paper, paper_kernel,
                                      paper_reference, paper_step, run_label)
from modernize.design.spec import model_config_defaults

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # traces 14 paper-scale models; the fast tier keeps the 4.6-GFLOPs step
@pytest.mark.parametrize("step", STEPS)
def test_every_step_has_the_papers_gflops_within_0_1(step, step_model):
    gflops = count_gflops(step_model(step), 224)
    assert abs(gflops - paper_step(step)["gflops"]) <= 0.1, f"{step}: {gflops:.3f} GFLOPs"


@pytest.mark.slow  # traces paper-scale models
@pytest.mark.parametrize("kernel", [5, 9, 11])
def test_kernel_size_sweep_has_the_papers_gflops(kernel, step_model):
    model = step_model("kernel_size", (f"model.block.kernel_size={kernel}",))
    assert abs(count_gflops(model, 224) - paper_kernel(kernel)["gflops"]) <= 0.1


def test_the_inverted_bottleneck_step_has_4_6_gflops(step_model):
    # the paper's example; ours is 4.69 (docs/roadmap.md explains the 0.09)
    assert count_gflops(step_model("inverted_bottleneck"), 224) == pytest.approx(4.6, abs=0.1)


def test_resnet50_has_torchvisions_parameter_count(step_model):
    assert count_params(step_model("resnet50")) == 25_557_032


def test_the_recipe_step_does_not_change_the_model(step_model):
    a, b = step_model("resnet50"), step_model("recipe")
    assert [(n, p.shape) for n, p in a.named_parameters()] == [(n, p.shape) for n, p in b.named_parameters()]
    assert b.spec.drop_path_rate == 0.1 and a.spec.drop_path_rate == 0.0  # training-only regularization


def test_convnext_t_equals_the_reference_model(step_model):
    ours = step_model("separate_downsampling")
    assert count_params(ours) == 28_589_128
    assert ours.spec == model_spec(compose(["model=convnext_t"]))


def test_the_step_configs_are_generated_from_the_roadmap_in_its_order():
    assert config_names("step") == list(STEPS)
    for step in ("resnet50", "patchify", "separate_downsampling"):
        by_step = compose([f"+step={step}"])
        by_deltas = compose([f"+delta=[{','.join(deltas_up_to(step))}]"])
        assert by_step == by_deltas and by_step.label == step  # the same config, the same label


def test_every_roadmap_delta_has_a_config_file_and_the_paper_has_every_step():
    assert config_names("delta") == list(DELTAS)
    assert [row["step"] for row in paper()["roadmap_resnet50_regime"]] == list(STEPS)


@pytest.mark.slow
def test_the_makefile_asks_python_for_the_roadmap():
    makefile = (ROOT / "Makefile").read_text()
    assert "inverted_bottleneck" not in makefile and "run.py -m" not in makefile  # modernize.training.sweeps runs them
    for kind in ("roadmap", "kernels", "ablate"):
        assert f"$(SWEEP_RUN) {kind}" in makefile
    out = subprocess.run([sys.executable, "-m", "modernize.sweep", "--steps"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert out.strip() == ",".join(STEPS)


@pytest.mark.slow  # composes the config of every committed run
@pytest.mark.parametrize("sweeps, model", [
    ("roadmap-*", lambda done: [f"+step={done['label']}"]),                          # make roadmap: a step each
    ("ablate-*", lambda done: [f"+delta=[{','.join(label_deltas(done['label']))}]"]),  # make ablate: a delta list each
    ("kernels-*", lambda done: ["+step=kernel_size",                               # make kernels: a kernel size each
                                f"model.block.kernel_size={done['kernel_size']}"]),
])
def test_committed_runs_keep_their_config_hash(sweeps, model):
    """Finished runs are skipped by config hash: composing a committed run's step (roadmap), its label's deltas
    (ablation matrix) or its kernel size (kernel sweep) must give the hash it was trained under, or a re-run of the
    sweep would train it again.
    (These sweeps use their profile as it is; other sweeps under experiments/runs/ add overrides.)"""
    records = sorted(ROOT.glob(f"experiments/runs/{sweeps}/*/summary.json"))
    assert records
    for path in records:
        done = json.loads(path.read_text())
        cfg = compose([*model(done), f"seed={done['seed']}", f"profile={done['profile']}", f"data={done['data']}"])
        assert config_hash(cfg) == done["config_hash"], path


def test_model_spec_defaults_are_resnet50_and_written_once():
    composed = model_spec(compose([]))
    assert composed == ModelSpec()  # conf/model/resnet50.yaml starts from the dataclass's defaults
    model = compose([]).model
    assert {k: v for k, v in model.items() if k not in ("name", "target")} == model_config_defaults()
    assert "stride_divisor" not in model.stem  # the profile's, not the model config's


# --------------------------------------------------------------------------- labels of runs made of deltas
@pytest.mark.parametrize("deltas,label", [
    (list(DELTAS), "separate_downsampling"),
    ([*deltas_up_to("gelu"), "layer_norm"], "gelu+layer_norm"),
    ([d for d in DELTAS if d != "gelu"], "separate_downsampling-gelu"),
    (["gelu", "layer_norm"], "resnet50+gelu+layer_norm"),
    (["stage_ratio"], "resnet50+stage_ratio"),
    ([*DELTAS, "silu"], "separate_downsampling+silu"),
    ([*[d for d in DELTAS if d != "gelu"], "silu"], "separate_downsampling-gelu+silu"),
])
def test_a_run_is_labelled_by_its_closest_roadmap_step_and_the_edits(deltas, label):
    assert run_label(deltas) == label
    assert run_label(label_deltas(label)) == label
    assert base_step(label) == label.replace("+", " ").replace("-", " ").split()[0]


@pytest.mark.parametrize("overrides,label", [
    (["+step=gelu"], "gelu"),
    (["+step=gelu", "+delta=[layer_norm]"], "gelu+layer_norm"),
    (["+step=gelu", "+delta=[fewer_activations]"], "fewer_activations"),  # that is the next roadmap step
    (["+step=gelu", "delta=[recipe,patchify]"], "recipe+patchify"),
    (["+delta=[gelu,layer_norm]"], "resnet50+gelu+layer_norm"),
])
def test_composed_runs_carry_their_label(overrides, label):
    assert compose(overrides).label == label


def test_a_leave_one_out_run_is_labelled_as_one():
    assert compose(leave_one_out("gelu")).label == "separate_downsampling-gelu"


# --------------------------------------------------------------------------- structure of each step
def blocks(model):
    return [m for m in model.modules() if isinstance(m, Block)]


def count(module, kind):
    return sum(isinstance(m, kind) for m in module.modules())


def test_stage_ratio_is_3_3_9_3(step_model):
    assert [len(s.blocks) for s in step_model("stage_ratio").stages] == [3, 3, 9, 3]
    assert [len(s.blocks) for s in step_model("recipe").stages] == [3, 4, 6, 3]


def test_patchify_stem_is_a_4x4_stride_4_conv(step_model):
    stem = step_model("patchify").stem
    assert stem.conv.kernel_size == (4, 4) and stem.conv.stride == (4, 4)
    assert count(stem, nn.MaxPool2d) == 0 and count(step_model("stage_ratio").stem, nn.MaxPool2d) == 1


def test_depthwise_makes_the_spatial_conv_depthwise(step_model):
    for block in blocks(step_model("depthwise")):
        conv = block.branch.spatial
        assert conv.groups == conv.in_channels == conv.out_channels


def test_resnextify_widens_to_96(step_model):
    model = step_model("resnextify")
    assert model.stem.conv.out_channels == 96
    assert [s.blocks[0].branch.spatial.in_channels for s in model.stages] == [96, 192, 384, 768]


def test_inverted_bottleneck_is_narrow_wide_narrow(step_model):
    for block in blocks(step_model("inverted_bottleneck")):
        assert block.branch.pw1.out_channels == 4 * block.out_dim
        assert block.branch.pw2.in_channels == 4 * block.out_dim
    for block in blocks(step_model("resnextify")):
        assert block.branch.pw1.out_channels * 4 == block.out_dim


def test_move_up_puts_the_depthwise_conv_first(step_model):
    for block in blocks(step_model("move_up_dwconv")):
        assert next(iter(block.branch._modules)) == "spatial"
    for block in blocks(step_model("inverted_bottleneck")):
        assert next(iter(block.branch._modules)) == "pw1"


def test_kernel_size_step_uses_7x7(step_model):
    assert {b.branch.spatial.kernel_size for b in blocks(step_model("kernel_size"))} == {(7, 7)}


def test_gelu_replaces_every_relu(step_model):
    assert count(step_model("gelu"), nn.ReLU) == 0 and count(step_model("gelu"), nn.GELU) > 0
    assert count(step_model("kernel_size"), nn.GELU) == 0


def test_fewer_activations_leaves_one_gelu_per_block_between_the_1x1s(step_model):
    for block in blocks(step_model("fewer_activations")):
        names = list(block.branch._modules)
        assert count(block, nn.GELU) == 1
        assert names.index("pw1_act") == names.index("pw1") + 2 - ("pw1_norm" not in names) and \
            names.index("pw1_act") < names.index("pw2")


def test_fewer_norms_leaves_one_norm_per_block_before_the_1x1s(step_model):
    for block in blocks(step_model("fewer_norms")):
        names = list(block.branch._modules)
        assert count(block.branch, nn.BatchNorm2d) == 1
        assert names[:2] == ["spatial", "spatial_norm"]


def test_layer_norm_replaces_every_batch_norm(step_model):
    model = step_model("layer_norm")
    assert count(model, nn.BatchNorm2d) == 0 and count(model, LayerNorm2d) > 0


def test_separate_downsampling_has_ln_then_2x2_conv_between_stages_and_identity_shortcuts(step_model):
    model = step_model("separate_downsampling")
    for stage in list(model.stages)[1:]:
        assert isinstance(stage.downsample.norm, LayerNorm2d)
        assert stage.downsample.conv.kernel_size == (2, 2) and stage.downsample.conv.stride == (2, 2)
    assert all(isinstance(b.shortcut, nn.Identity) for b in blocks(model))
    assert isinstance(model.head.norm, nn.LayerNorm) and isinstance(model.stem.norm, LayerNorm2d)
    assert all(float(b.layer_scale.gamma[0].detach()) == pytest.approx(1e-6) for b in blocks(model))


# --------------------------------------------------------------------------- deltas used on their own
def test_deltas_compose_on_their_own_on_resnet50():
    spec = model_spec(compose(["+delta=[gelu,layer_norm]"]))
    assert spec.block.activation == "gelu" and spec.block.norm == "layer"
    assert spec.depths == (3, 4, 6, 3) and spec.stem.kind == "resnet"
    out = build(spec).eval()(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 1000)


def test_leave_one_out_is_the_full_roadmap_minus_one_delta():
    full = model_spec(compose(["+step=separate_downsampling"]))
    without_gelu = model_spec(compose(leave_one_out("gelu")))
    assert without_gelu.block.activation == "relu"
    assert without_gelu.downsampling == full.downsampling and without_gelu.block.norm == "layer"


def test_deltas_are_relative_resnet200_walks_to_convnext_b():
    spec = model_spec(compose(["model=resnet200", "+step=separate_downsampling"]))
    assert spec == model_spec(compose(["model=convnext_b"]))
    assert model_spec(compose(["model=resnet200", "+step=stage_ratio"])).depths == (3, 3, 27, 3)
    with torch.device("meta"):
        assert count_params(build(spec)) == 88_591_464


@pytest.mark.parametrize("variant,params", [("convnext_t", 28_589_128), ("convnext_s", 50_223_688),
                                            ("convnext_b", 88_591_464), ("convnext_l", 197_767_336),
                                            ("convnext_xl", 350_196_968)])
def test_variants_have_the_published_param_counts(variant, params):
    with torch.device("meta"):
        assert count_params(build(model_spec(compose([f"model={variant}"])))) == params


@pytest.mark.parametrize("variant,millions", [("convnext_iso_s", 22), ("convnext_iso_b", 87), ("convnext_iso_l", 306)])
def test_isotropic_variants_have_the_published_param_counts(variant, millions):
    with torch.device("meta"):
        params = count_params(build(model_spec(compose([f"model={variant}"]))))
    assert round(params / 1e6) == millions


class ChannelScale(nn.Module):
    """Layer scale over the channel dim of an NCHW tensor, with the block's own gamma."""

    def __init__(self, gamma: nn.Parameter):
        super().__init__()
        self.gamma = gamma

    def forward(self, x):
        return x * self.gamma.view(1, -1, 1, 1)


def nchw_layers(block: Block) -> Block:
    """A copy of the block whose layers are the plain NCHW modules (1x1 convs as Conv2d, channels-first LayerNorm,
    layer scale over dim 1) with copies of its parameters, in the same order: what its NHWC path must equal."""
    layers = copy.deepcopy(block)
    for name, layer in list(layers.branch.named_children()):
        if isinstance(layer, PointwiseConv):
            conv = nn.Conv2d(layer.in_channels, layer.out_channels, 1, bias=layer.bias is not None)
            conv.weight, conv.bias = layer.weight, layer.bias
            setattr(layers.branch, name, conv)
        elif isinstance(layer, LayerNorm2d):
            layer.channels_last = False
    if isinstance(layers.layer_scale, LayerScale):
        layers.layer_scale = ChannelScale(layers.layer_scale.gamma)
    return layers


BOTH_LAYOUTS = ("resnet50", "separate_downsampling")  # contiguous too: the rest run channels_last, as they train
LAYOUT_CASES = ([(step, torch.channels_last) for step in STEPS]
                + [(step, torch.contiguous_format) for step in BOTH_LAYOUTS])


@pytest.mark.parametrize("step, memory_format", fast_tier(LAYOUT_CASES, [
    (step, layout) for step, layout in LAYOUT_CASES if step in REPRESENTATIVE_STEPS]))
def test_every_block_computes_what_its_layers_say_in_either_layout(step, memory_format):
    """The block runs the layers after its spatial conv on the NHWC tensor (1x1 convs as Linear, BatchNorm over
    every pixel): the output, the gradients and BatchNorm's running statistics are those of its NCHW layers applied
    one after the other, shortcut(x) + drop_path(layer_scale(branch(x))), in training mode."""
    cfg = compose([f"+step={step}", "model.width_multiplier=0.125", "model.drop_path_rate=0.5",
                   "model.block.layer_scale_init=0.5"])
    torch.manual_seed(0)
    network = build(model_spec(cfg, num_classes=10)).train()
    x = torch.randn(4, 3, 32, 32)
    blocks = [m for m in network.modules() if isinstance(m, Block)]
    for block in (blocks[0], blocks[-1]):  # a stage's first block (projection shortcut or not) and a plain one
        layers = nchw_layers(block)
        x = torch.randn(4, block.branch[0].in_channels, 8, 8).contiguous(memory_format=memory_format)
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        torch.manual_seed(1)  # the same stochastic-depth draw for both
        out = block(a)
        torch.manual_seed(1)
        expected = layers.post_act(layers.shortcut(b) + layers.drop_path(layers.layer_scale(layers.branch(b))))
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        out.square().sum().backward()
        expected.square().sum().backward()
        # float32 sums in another order: the tolerance scales with the gradient's largest entry (a bias in front of
        # a BatchNorm has a gradient that is zero but for rounding)
        for name, g, h in [("input", a.grad, b.grad)] + [
                (name, p.grad, q.grad) for (name, p), q in zip(block.named_parameters(), layers.parameters())]:
            torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-5 * h.abs().max().item() + 1e-4, msg=name)
        for (name, buffer), other in zip(block.named_buffers(), layers.buffers()):
            torch.testing.assert_close(buffer, other, msg=name)


def test_one_sweep_definition_gives_the_runs_make_trains_and_the_commands_the_report_shows(tmp_path, monkeypatch):
    (tmp_path / "delta").mkdir()  # EXTRA's delta of one's own, found where make finds it
    (tmp_path / "delta" / "silu.yaml").write_text("# @package _global_\nmodel:\n  block: {activation: silu}\n")
    monkeypatch.setenv("MODERNIZE_CONFIG_PATH", str(tmp_path))
    from modernize.design.roadmap import STEPS
    from modernize.training.sweeps import KERNEL_SUBDIR, Sweep

    roadmap = Sweep("roadmap", "smoke", "synthetic", seeds="0,1", extra=("separate_downsampling+silu",),
                    overrides=("train.threads=1",))
    (steps, extra) = roadmap.multiruns()
    assert steps[:2] == ["seed=0,1", f"+step={','.join(STEPS)}"] and steps[-1] == "train.threads=1"
    assert "sweep_name=roadmap-smoke-synthetic" in steps and "out_root=experiments/runs" in steps
    assert extra[1].startswith("+delta=[recipe,") and extra[1].endswith(",silu]")
    assert roadmap.shown()[1] == ("python run.py -m seed=0,1 \"+delta=$(python -m modernize.sweep --delta-lists "
                                  "separate_downsampling+silu)\" profile=smoke data=synthetic "
                                  "out_root=experiments/runs sweep_name=roadmap-smoke-synthetic train.threads=1")
    assert roadmap.tabulation() == ["modernize.tabulate", "experiments/runs/roadmap-smoke-synthetic", "--out",
                                    "experiments/roadmap/smoke-synthetic"]
    kernels = Sweep("kernels", "cpu", "fashion_mnist", kernels=(3, 7))
    assert kernels.multiruns()[0][-1] == KERNEL_SUBDIR
    assert kernels.shown()[0].endswith("hydra.sweep.subdir='k${model.block.kernel_size}-seed${seed}'")
    assert "--by-kernel" in kernels.tabulation()
    ablate = Sweep("ablate", "smoke", "synthetic", deltas=("gelu",))
    assert ablate.multiruns()[0][1].startswith("+delta=[recipe],") and ablate.tabulation()[0] == "modernize.ablate"
    assert "--delta-lists --deltas gelu)" in ablate.shown()[0]


@pytest.mark.parametrize("argv, message", [
    (["--profile", "laptop"], "unknown profile 'laptop'; known profiles: cpu, gpu, imagenet, smoke"),
    (["--data", "mnist"], "unknown data 'mnist'; known data sets: "),
    (["--deltas", "nope"], "unknown delta 'nope'"),
])
def test_a_sweep_with_a_bad_argument_is_refused_in_one_line_before_any_run(argv, message, capsys):
    from modernize.training.sweeps import main

    assert main(["run", "ablate", "--profile", "smoke", "--data", "synthetic", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


@pytest.mark.parametrize("argv", [
    ["run", "roadmap", "--extra", "separate_downsampling+silo"],                 # make roadmap EXTRA=...
    ["run", "roadmap", "--extra", "separate_downsampling+gelu patchify-silo"],    # a label that leaves one out
    ["run", "ablate", "--deltas", "gelu silo"],                                   # make ablate ABLATE_DELTAS=...
    ["--delta-lists", "separate_downsampling+silo"],                              # what the report's command prints
])
def test_a_misspelt_delta_in_any_label_is_refused_before_the_first_run(argv, tmp_path, capsys):
    """EXTRA and ABLATE_DELTAS are checked before the roadmap's runs start, not after them."""
    from modernize.training.sweeps import main

    run_args = ["--profile", "smoke", "--data", "synthetic", "--runs", str(tmp_path)] if argv[0] == "run" else []
    assert main([*argv, *run_args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown delta 'silo'") and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing ran


def test_a_label_with_a_delta_of_ones_own_is_accepted(tmp_path, monkeypatch, capsys):
    (tmp_path / "delta").mkdir()
    (tmp_path / "delta" / "silo.yaml").write_text("# @package _global_\nmodel:\n  block: {activation: silu}\n")
    monkeypatch.setenv("MODERNIZE_CONFIG_PATH", str(tmp_path))
    from modernize.training.sweeps import main

    assert main(["--delta-lists", "separate_downsampling+silo"]) == 0
    assert capsys.readouterr().out.strip().endswith("separate_downsampling,silo]")


# ------------------------------------------------------------------ other models: their labels, recipe, paper row
@pytest.mark.parametrize("overrides,label", [
    (["model=convnext_s"], "convnext_s"),
    (["model=convnext_iso_s"], "convnext_iso_s"),
    (["model=resnet200"], "resnet200"),
    (["model=resnet200", "+step=resnet50"], "resnet200"),
    (["model=resnet200", "+step=separate_downsampling"], "separate_downsampling@resnet200"),
    (["model=resnet200", "+step=gelu", "+delta=[layer_norm]"], "gelu+layer_norm@resnet200"),
    (["model=resnet50", "+step=gelu"], "gelu"),  # the roadmap's own base: the roadmap's label
])
def test_a_run_on_another_model_carries_the_model_in_its_label(overrides, label):
    """`model=convnext_s` was labelled 'custom', and `model=resnet200 +step=separate_downsampling` as the ResNet-50
    roadmap's 'separate_downsampling': its folder, its W&B run and its paper reference (4.5 GFLOPs beside 15.38) were
    the ResNet-50 step's."""
    assert compose(overrides).label == label


def test_the_convnext_variants_train_with_the_papers_recipe_unless_told_otherwise():
    for name in ("convnext_t", "convnext_s", "convnext_b", "convnext_l", "convnext_xl", "convnext_iso_s",
                 "convnext_iso_b", "convnext_iso_l"):
        cfg = compose([f"model={name}"])
        assert cfg.recipe.name == "modern" and cfg.recipe.optimizer == "adamw" and cfg.recipe.mixup == 0.8, name
    assert compose(["model=convnext_s", "recipe=original"]).recipe.name == "original"  # the command line wins
    assert compose(["recipe=original", "model=convnext_s"]).recipe.name == "original"
    assert compose(["model=convnext_s"]).model.drop_path_rate == 0.4  # Table 5's, not the recipe delta's 0.1
    assert compose(["model=resnet200"]).recipe.name == "original" == compose([]).recipe.name  # ResNets: theirs


@pytest.mark.parametrize("label,top1,gflops,params", [
    ("gelu", 80.6, 4.2, None),                                     # Figure 2
    ("convnext_t", 82.1, 4.5, 28_589_128),                         # Table 1
    ("convnext_s", 83.1, 8.7, 50_223_688),
    ("convnext_b", 83.8, 15.4, 88_591_464),
    ("convnext_l", 84.3, 34.4, 197_767_336),
    ("convnext_xl", None, 60.9, 350_196_968),                      # ImageNet-22K pre-training only
    ("convnext_iso_s", 79.7, 4.3, 22_000_000),                     # Table 2
    ("convnext_iso_b", 82.0, 16.9, 87_000_000),
    ("convnext_iso_l", 82.6, 59.7, 306_000_000),
    ("resnextify@resnet200", 81.9, None, None),                    # section 2.4: the ResNet-200 regime
    ("inverted_bottleneck@resnet200", 82.6, None, None),
    ("separate_downsampling@resnet200", 83.8, 15.4, 88_591_464),   # = ConvNeXt-B
])
def test_each_label_has_the_papers_numbers_of_its_own_regime(label, top1, gflops, params):
    ref = paper_reference(label)
    assert (ref["top1"], ref["gflops"], ref["params"]) == (top1, gflops, params)


@pytest.mark.parametrize("label", ["gelu@resnet200", "resnet200", "stage_ratio@resnet200", "custom",
                                   "gelu+layer_norm", "separate_downsampling@convnext_t"])
def test_a_label_the_paper_has_no_number_for_has_no_reference(label):
    assert paper_reference(label) is None


@pytest.mark.slow  # a paper-scale model, seconds
def test_task_profile_of_a_step_on_resnet200_shows_its_regimes_reference_not_resnet50s(capsys):
    from modernize.training.cli import profile

    result = profile(compose(["task=profile", "model=resnet200", "+step=separate_downsampling"]))
    assert result["label"] == "separate_downsampling@resnet200"
    assert (result["paper_gflops"], result["paper_top1"]) == (15.4, 83.8)
    assert result["gflops_224"] == pytest.approx(15.36, abs=0.05)
    assert "paper (section 2.6): 88.6M params, 15.4 GFLOPs, top-1 83.8" in capsys.readouterr().out
    assert profile(compose(["task=profile", "model=resnet200", "+step=gelu"]))["paper_gflops"] is None
