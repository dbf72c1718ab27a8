"""The paper's comparisons: Swin and DeiT/ViT (timm's own models) as models of this project, with their paper rows,
the proxy's rules for transformers, and the refusals (a roadmap delta on a peer, a size the patches cannot tile)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import SMOKE, fast_tier

from modernize import compose
from modernize.design.config import check_step_overrides, model_spec, peer_models
from modernize.design.flops import count_gflops, count_params
from modernize.design.model import build
from modernize.design.peers import PeerSpec, check_timm
from modernize.design.roadmap import paper
from modernize.training.proxy import run_spec, tiling_window

PEERS = list(paper()["peers"])


def test_every_peer_of_the_papers_tables_is_a_model_config():
    assert sorted(PEERS) == list(peer_models()) == ["deit_b", "deit_s", "swin_b", "swin_s", "swin_t", "vit_l"]


@pytest.mark.parametrize("name", fast_tier(PEERS, ["deit_s"]))
def test_a_peer_has_the_papers_params_and_gflops_at_224(name):
    """Within 1M params and 0.1 GFLOPs of Tables 1 and 2: fvcore counts the attention (timm's fused attention is
    switched off while counting, and back on after)."""
    row = paper()["peers"][name]
    model = build(model_spec(compose([f"model={name}"])))
    fused = [m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")]
    assert abs(count_params(model) - row["params_m"] * 1e6) <= 1e6
    assert abs(count_gflops(model, 224) - row["gflops"]) <= 0.1
    assert [m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")] == fused  # as timm built it


@pytest.mark.slow  # a paper-scale model, seconds
def test_the_attention_is_counted_though_timm_fuses_it():
    """fvcore does not count timm's fused attention (F.scaled_dot_product_attention): counted on timm's own path,
    DeiT-S has its two attention matmuls more, (197 x 384) @ (384 x 197) and (197 x 197) @ (197 x 384) per block."""
    import warnings

    from fvcore.nn import FlopCountAnalysis

    model = build(model_spec(compose(["model=deit_s"]))).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = FlopCountAnalysis(model, torch.zeros(1, 3, 224, 224))
        fused.unsupported_ops_warnings(False)
        fused_gflops = fused.total() / 1e9
    attention = 12 * 2 * 197 * 197 * 384 / 1e9
    assert count_gflops(model, 224) - fused_gflops == pytest.approx(attention, rel=1e-3)


def test_the_cpu_profile_keeps_the_heads_and_the_convnext_stem_and_picks_a_window_that_tiles():
    swin = run_spec(compose(["model=swin_t", "profile=cpu"]), 10)
    assert (swin.embed_dim, swin.num_heads, swin.stage_dims()) == (24, (3, 6, 12, 24), (24, 48, 96, 192))
    assert (swin.img_size, swin.patch_size, swin.stage_grids(), swin.window_size) == (32, 4, (8, 4, 2, 1), 4)
    convnext_t = run_spec(compose(["model=convnext_t", "profile=cpu"]), 10)
    assert swin.stage_dims() == convnext_t.scaled_widths()  # the same widths as the ConvNeXt beside it
    deit = run_spec(compose(["model=deit_s", "profile=cpu"]), 10)
    assert (deit.embed_dim, deit.num_heads, deit.patch_size) == (96, (6,), 16)
    assert deit.patch_size == run_spec(compose(["model=convnext_iso_s", "profile=cpu"]), 10).stem.patch_size
    assert run_spec(compose(["model=swin_t", "profile=imagenet"]), 1000).window_size == 7  # the paper's, unchanged
    assert run_spec(compose(["model=swin_t", "profile=gpu"]), 10).window_size == 4  # 16x16 tokens


def test_the_window_is_the_largest_that_tiles_every_stage():
    spec = PeerSpec("swin_t", "swin_tiny_patch4_window7_224", "swin", 96, (2, 2, 6, 2), (3, 6, 12, 24), 4, 7)
    assert tiling_window(spec, 7) == 7  # 56, 28, 14, 7
    assert tiling_window(PeerSpec(**{**spec.__dict__, "img_size": 96}), 7) == 6  # 24, 12, 6, 3
    assert tiling_window(PeerSpec(**{**spec.__dict__, "img_size": 32}), 7) == 4  # 8, 4, 2, 1


def test_the_drop_path_is_the_papers_and_the_budget_rule_scales_it_as_a_convnexts():
    paper_rates = {name: model_spec(compose([f"model={name}"])).drop_path_rate for name in PEERS}
    assert paper_rates == {"swin_t": 0.2, "swin_s": 0.3, "swin_b": 0.5, "deit_s": 0.1, "deit_b": 0.1, "vit_l": 0.5}
    swin = run_spec(compose(["model=swin_t", "profile=cpu"]), 10)
    convnext = run_spec(compose(["model=convnext_t", "profile=cpu"]), 10)
    assert swin.drop_path_rate / 0.2 == pytest.approx(convnext.drop_path_rate / 0.1)


@pytest.mark.parametrize("overrides, expected", [
    (["model=swin_t", "+step=gelu"], "model=swin_t is timm's swin_t (a transformer of the paper's tables), and +step"),
    (["model=deit_s", "+delta=[gelu]"], "drop +delta, or choose a ConvNet"),
    (["model=swin_x"], "unknown model 'swin_x'"),
])
def test_a_roadmap_delta_on_a_peer_or_an_unknown_peer_is_refused_before_hydra(overrides, expected):
    with pytest.raises(ValueError) as info:
        check_step_overrides(overrides)
    assert expected in str(info.value) and "\n" not in str(info.value)
    if "unknown" in expected:
        assert all(name in str(info.value) for name in PEERS)  # the valid ones are listed


@pytest.mark.parametrize("overrides, expected", [
    (["model=swin_t", "profile.resolution=30"], "swin_t: 4x4 patches do not tile a 30 px image"),
    (["model=swin_t", "profile.resolution=48"], "swin_t: 12x12 tokens cannot be merged 3 times"),
    (["model=deit_s", "profile.resolution=40"], "deit_s: 16x16 patches do not tile a 40 px image"),
])
def test_a_size_the_patches_cannot_tile_is_refused_naming_the_sizes(overrides, expected):
    with pytest.raises(ValueError) as info:
        run_spec(compose(["profile=cpu", *overrides]), 10)
    assert expected in str(info.value)


def test_a_timm_without_the_model_is_one_line_naming_the_version_needed():
    import timm

    with pytest.raises(ValueError, match=f"timm {timm.__version__} has no model 'swin_huge_patch4_window7_224'; this "
                                         r"project needs timm >= 1\.0"):
        check_timm("swin_huge_patch4_window7_224")


def test_a_swin_t_run_trains_and_its_summary_names_timm_and_the_rules(tmp_path):
    from modernize.training.train import train

    summary = train(compose(["model=swin_t", *SMOKE, "logger.wandb.mode=disabled", "data.size=256"]), tmp_path)
    assert summary["label"] == "swin_t" and summary["paper_top1"] == 81.3 and summary["paper_gflops"] == 4.5
    assert summary["recipe"] == "modern" and summary["kernel_size"] is None
    rules = json.loads((tmp_path / "summary.json").read_text())["scaled"]
    import timm

    assert (rules["timm_model"], rules["timm_version"]) == ("swin_tiny_patch4_window7_224", timm.__version__)
    assert rules["window_size"] == 4 and rules["head_dim"] == 8 and rules["layer_scale_init"] is None
    assert {"peer_width_rule", "peer_patch_rule", "peer_window_rule"} <= set(rules)
    model = build(run_spec(compose(["model=swin_t", *SMOKE]), 10))
    assert type(model).__module__ == "timm.models.swin_transformer"  # timm's own class
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_a_deit_s_run_is_evaluated_from_its_folder_as_it_scored_itself(tmp_path):
    """task=eval reads a peer's run as a ConvNeXt's: its record builds timm's model, whose file holds timm's layout."""
    from modernize.training.cli import run_task
    from modernize.training.train import train

    run = ["model=deit_s", *SMOKE, "logger.wandb.mode=disabled", "data.size=256"]
    summary = train(compose(run), tmp_path / "trained")
    result = run_task(compose(["task=eval", f"eval.weights={tmp_path / 'trained'}", f"eval.out={tmp_path / 'out'}",
                               "eval.ema=false", *run]), tmp_path / "eval", multirun=False)
    assert result["top1"] == pytest.approx(summary["final_top1"])


def test_an_exported_peer_is_timms_own_class_and_its_card_loads_it_as_written(tmp_path, monkeypatch):
    """--format timm writes the state dict of timm's own class (no conversion) and a card whose Python builds it at
    the run's size with timm alone; a format of another library's ConvNeXt is refused in one line."""
    from modernize.design.export import ExportError
    from modernize.training.export import export_run, run_weights
    from modernize.training.train import train

    run = ["model=deit_s", *SMOKE, "logger.wandb.mode=disabled", "data.size=128", "profile.epochs=1"]
    train(compose(run), tmp_path / "trained")
    weights, card_path = export_run(tmp_path / "trained", "timm", out=tmp_path / "out" / "deit.pth")
    card = json.loads(card_path.read_text())
    assert (card["load"]["library"], card["load"]["class"], card["step"]) == ("timm", "VisionTransformer", "deit_s")
    monkeypatch.chdir(weights.parent)
    scope: dict = {}
    exec(card["load"]["python"], scope)  # as written, beside the file  # noqa: S102
    ours, *_ = run_weights(tmp_path / "trained", ema=None)  # the weights export chose (the EMA's, where there is one)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(scope["model"](x), ours.eval()(x))
    with pytest.raises(ExportError, match="timm's own VisionTransformer: its weights need no conversion; --format "
                                          "timm or pt2 or onnx"):
        export_run(tmp_path / "trained", "official")


# ------------------------------------------------------------------------------------------------ make peers' tables
def _write_run(sweep, label, overrides, seed, top1):
    from omegaconf import OmegaConf

    from modernize.design.config import kernel_size_of
    from modernize.training.identity import config_hash

    cfg = compose([*overrides, f"seed={seed}", "profile=cpu", "sweep_name=" + sweep.name])
    run = sweep / f"{label}-seed{seed}"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run / "summary.json").write_text(json.dumps({
        "label": label, "seed": seed, "final_top1": top1, "config_hash": config_hash(cfg),
        "kernel_size": kernel_size_of(cfg), "params": 1e6, "gflops_224": 4.5}))


def test_the_tables_pair_convnext_and_its_peer_by_seed_and_take_the_roadmaps_convnext_t_when_it_trained_the_same(
        tmp_path):
    from modernize.results import peers_table

    peers, roadmap, other = tmp_path / "peers-cpu-x", tmp_path / "roadmap-cpu-x", tmp_path / "roadmap-longer"
    for seed, (swin, convnext) in enumerate([(80.0, 81.0), (80.5, 81.0), (79.0, 80.5)]):
        _write_run(peers, "swin_t", ["model=swin_t"], seed, swin)
        _write_run(roadmap, "separate_downsampling", ["+step=separate_downsampling"], seed, convnext)
        _write_run(other, "separate_downsampling", ["+step=separate_downsampling", "profile.epochs=5"], seed, 99.0)
    (row,) = peers_table.peer_rows(peers, roadmap)
    assert (row["table"], row["convnext"], row["peer"], row["convnext_from"]) == (1, "convnext_t", "swin_t",
                                                                                  "separate_downsampling")
    assert row["change"] == pytest.approx((1.0 + 0.5 + 1.5) / 3) and row["paired_seeds"] == 3
    assert row["low"] < row["change"] < row["high"] and row["p"] is not None
    assert (row["paper_convnext_top1"], row["paper_peer_top1"], row["paper_change"]) == (82.1, 81.3, 0.8)
    assert row["agrees"] is True
    (untaken,) = peers_table.peer_rows(peers, other)  # trained for 5 epochs, not the sweep's 6: not ConvNeXt-T here
    assert untaken["convnext_n"] == 0 and untaken["change"] is None
    assert peers_table.main([str(peers), "--convnext-from", str(roadmap), "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "peers.md").read_text()
    assert "## Table 1: ConvNeXt beside Swin" in page and "convnext_t (roadmap's separate_downsampling)" in page
    assert "No runs of this table's pairs." in page.split("## Table 2")[1]
    assert (tmp_path / "out" / "peers.csv").read_text().splitlines()[0].startswith("table,convnext,peer,")


def test_the_report_shows_the_peers_tables_numbers_as_in_their_csv_and_the_command_that_makes_them(tmp_path):
    from test_report import assert_shown_equals_csv, csv_rows, parse

    from modernize.results import peers_table, report

    runs = tmp_path / "runs"
    peers, roadmap = runs / "peers-cpu-fashion_mnist", runs / "roadmap-cpu-fashion_mnist"
    for seed, (deit, iso) in enumerate([(80.0, 81.0), (80.5, 80.0), (79.0, 80.5)]):
        _write_run(peers, "deit_s", ["model=deit_s"], seed, deit)
        _write_run(peers, "convnext_iso_s", ["model=convnext_iso_s"], seed, iso)
    out = tmp_path / "peers" / "cpu-fashion_mnist"
    assert peers_table.main([str(peers), "--convnext-from", str(roadmap), "--out", str(out)]) == 0
    assert (out / "peers.png").read_bytes().startswith(b"\x89PNG")
    page = tmp_path / "report.html"
    assert report.main([str(out), "--runs", str(runs), "--out", str(page)]) == 0
    parsed = parse(page)
    rows = csv_rows(out / "peers.csv", "peer")
    cells = [c for c in parsed.cells if c[0] == "peers-0-table"]
    assert {c[1] for c in cells} == set(rows) == {"deit_s"}
    for _, key, column, shown in cells:
        assert_shown_equals_csv(shown.strip(), rows[key][column], column)
    assert {"change", "low", "high", "p", "paper_convnext_top1", "paper_peer_top1"} <= {c[2] for c in cells}
    text = page.read_text()
    assert "The paper&#x27;s comparisons (Tables 1 and 2)" in text  # its own section, with the commands that made it
    assert "python run.py -m seed=0,1,2 model=convnext_iso_s,deit_s profile=cpu data=fashion_mnist" in text
    assert ("python -m modernize.peers experiments/runs/peers-cpu-fashion_mnist --convnext-from "
            "experiments/runs/roadmap-cpu-fashion_mnist") in text  # the runs' own out_root


def test_the_roadmaps_fidelity_line_sets_convnext_t_beside_a_swin_t_trained_with_its_settings(tmp_path):
    """Figure 2's Swin-T line from runs: make peers' Swin-T beside the roadmap sweep, where it trained with the
    roadmap's settings; a Swin-T of other settings (5 epochs, not the profile's 6) is not compared."""
    import csv

    from modernize.results import tabulate

    runs = tmp_path / "runs"
    roadmap = runs / "roadmap-cpu-fashion_mnist"
    for seed, convnext in enumerate([81.0, 81.0, 80.5]):
        _write_run(roadmap, "separate_downsampling", ["+step=separate_downsampling"], seed, convnext)
        _write_run(roadmap, "recipe", ["+step=recipe"], seed, 79.0 + seed / 10)
        _write_run(roadmap, "resnet50", ["+step=resnet50"], seed, 78.0 - seed / 10)
        _write_run(runs / "peers-cpu-other", "swin_t", ["model=swin_t", "profile.epochs=5"], seed, 99.0)
    out = tmp_path / "table"
    assert tabulate.main([str(roadmap), "--out", str(out)]) in (0, 1)
    assert "Swin-T" not in (out / "fidelity.csv").read_text()
    for seed, swin in enumerate([80.0, 80.5, 79.0]):
        _write_run(runs / "peers-cpu-fashion_mnist", "swin_t", ["model=swin_t"], seed, swin)
    assert tabulate.main([str(roadmap), "--out", str(out)]) in (0, 1)
    (record,) = csv.DictReader(open(out / "fidelity.csv"))
    assert "ConvNeXt-T − Swin-T +1.00 [" in record["line"] and "(paper +0.8)" in record["line"]
    # the other comparisons keep their own paper numbers (a row's per-step "paper_change" is not the peer's)
    assert "ConvNeXt-T − ResNet-50 (modern recipe) +1.73 [" in record["line"] and "(paper +3.2)" in record["line"]
    assert (out / "roadmap.png").read_bytes().startswith(b"\x89PNG")
