"""The training loop in-process, on tiny models: resume, precision and memory format, batch sources.

The same checks as the subprocess tests of test_train.py where a subprocess proves nothing extra, in seconds.
"""

import json

import pytest
import torch
from helpers import SMOKE
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from modernize import compose
from modernize.training import train as train_module
from modernize.training.batches import InMemoryBatches
from modernize.training.engine import prepare_batch
from modernize.training.runtime import Processes
from modernize.training.state import load_checkpoint
from modernize.training.train import save, setup, train

TINY = ["+step=separate_downsampling", *SMOKE, "logger.wandb.mode=disabled", "data.size=256"]


def metrics(run_dir):  # everything but timings
    return [{k: v for k, v in json.loads(line).items() if "per_s" not in k and "time" not in k}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


class Crash(Exception):
    pass


def test_a_run_stopped_after_an_epoch_resumes_to_the_same_result(tmp_path, monkeypatch):
    cfg = compose([*TINY, "profile.epochs=3"])
    train(cfg, tmp_path / "uninterrupted")

    log_epoch = train_module.log_epoch

    def crash_after_the_first_epoch(run, row):
        log_epoch(run, row)
        raise Crash  # as if the process died right after the first epoch's checkpoint

    monkeypatch.setattr(train_module, "log_epoch", crash_after_the_first_epoch)
    with pytest.raises(Crash):
        train(cfg, tmp_path / "resumed")
    monkeypatch.setattr(train_module, "log_epoch", log_epoch)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt", train_module.config_hash(cfg), "x")["epoch"] == 1
    summary = train(cfg, tmp_path / "resumed")
    assert metrics(tmp_path / "resumed") == metrics(tmp_path / "uninterrupted")
    assert summary["final_top1"] == json.loads((tmp_path / "uninterrupted" / "summary.json").read_text())["final_top1"]


def test_the_train_state_round_trips_through_a_mid_epoch_checkpoint(tmp_path):
    cfg = compose([*TINY, "train.checkpoint_every_steps=1"])
    run = setup(cfg, tmp_path)
    for images, labels in list(run.batches.train_batches(epoch=0))[:2]:
        run.step(*prepare_batch(images, labels, run.augment_train, run.mixing, run.memory_format))
    run.state.step_in_epoch, run.state.epoch_loss = 2, {"loss_sum": 4.5, "seen": 128}
    save(run)
    expected_rng = torch.get_rng_state()

    torch.manual_seed(12345)  # a fresh process would start from any state
    resumed = setup(cfg, tmp_path)
    assert (resumed.state.epoch, resumed.state.step_in_epoch) == (0, 2)
    assert resumed.state.epoch_loss == {"loss_sum": 4.5, "seen": 128}
    assert torch.equal(torch.get_rng_state(), expected_rng)
    for key, value in run.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert resumed.step.scheduler.last_epoch == run.step.scheduler.last_epoch == 2
    moments = [s["exp_avg"] for s in run.step.optimizer.state.values()]
    assert all(torch.equal(a["exp_avg"], b) for a, b in zip(resumed.step.optimizer.state.values(), moments))


def test_bf16_autocast_reaches_every_conv_and_channels_last_reaches_the_stem(tmp_path):
    """Every conv and every 1x1 conv the block runs as a Linear on its NHWC tensor
    (modernize.design.model.PointwiseConv), and the classifier, compute in bf16; the stem's input is channels-last."""
    cfg = compose([*TINY, "train.precision=bf16", "train.channels_last=true"])
    run = setup(cfg, tmp_path)
    seen = []

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func in (F.conv2d, F.linear):
                seen.append((func, out.dtype, args[0].is_contiguous(memory_format=torch.channels_last)))
            return out

    weights = [m for m in run.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    images, labels = next(run.batches.train_batches(epoch=0))
    inputs, targets = prepare_batch(images, labels, run.augment_train, run.mixing, run.memory_format)
    with Record():
        run.step(inputs, targets)
    assert len(seen) == len(weights) and {dtype for _, dtype, _ in seen} == {torch.bfloat16}
    assert seen[0][0] is F.conv2d and seen[0][2], "the stem's input is channels-last"
    assert all(p.dtype == torch.float32 for p in run.model.parameters()), "autocast keeps fp32 master weights"


def test_fp32_and_nchw_are_what_they_say(tmp_path):
    run = setup(compose([*TINY, "train.channels_last=false"]), tmp_path)
    images, labels = next(run.batches.train_batches(epoch=0))
    inputs, _ = prepare_batch(images, labels, run.augment_train, run.mixing, run.memory_format)
    assert inputs.dtype == torch.float32 and inputs.is_contiguous()
    assert not inputs.is_contiguous(memory_format=torch.channels_last)


def test_in_memory_batches_cover_each_epoch_once_and_shard_it_over_processes():
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 3, 2, 2).contiguous()
    data = train_module.datasets.TensorDataset(images, torch.arange(40))
    shards = [InMemoryBatches(data, data, torch.device("cpu"), 5, Processes(rank=r, count=2), seed=0)
              for r in range(2)]
    assert shards[0].steps_per_epoch == 4  # 40 images, global batch 10
    seen = [torch.cat([labels for _, labels in s.train_batches(epoch=0)]) for s in shards]
    assert sorted(torch.cat(seen).tolist()) == list(range(40))  # every image once, no overlap between processes
    resumed = torch.cat([labels for _, labels in shards[0].train_batches(epoch=0, start_step=2)])
    assert torch.equal(resumed, seen[0][10:])  # a resumed epoch continues the same order
    assert not torch.equal(torch.cat([lb for _, lb in shards[0].train_batches(epoch=1)]), seen[0])
    val = [torch.cat([labels for _, labels in s.val_batches()]) for s in shards]
    assert sorted(torch.cat(val).tolist()) == list(range(40))


def test_a_cached_paper_scale_count_is_not_traced_again(tmp_path, monkeypatch):
    from modernize.design import flops

    monkeypatch.setenv("MODERNIZE_CACHE_DIR", str(tmp_path))
    spec = train_module.model_spec(compose(["+step=resnet50", "model.width_multiplier=0.5"]))
    flops.paper_scale_stats.cache_clear()
    first = flops.paper_scale_stats(spec)
    assert len(list((tmp_path / "paper_scale").glob("*.json"))) == 1
    flops.paper_scale_stats.cache_clear()
    monkeypatch.setattr(flops, "params_and_gflops",
                        lambda *a, **k: pytest.fail("traced although the number was cached"))
    assert flops.paper_scale_stats(spec) == first


# ------------------------------------------------------------------- what a user sees, without a subprocess
def run_as_cli(overrides, run_dir):
    """modernize.training.cli.run_task, as `python run.py <overrides>` calls it after Hydra has composed the config."""
    from modernize.training.cli import run_task

    return run_task(compose([*overrides, "logger.wandb.mode=disabled"]), run_dir, multirun=False)


def refused(overrides, run_dir, capsys) -> str:
    """Run, expect the CLI's refusal (exit 2, one line, no traceback), return the message."""
    with pytest.raises(SystemExit) as exit_info:
        run_as_cli(overrides, run_dir)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return err


@pytest.mark.parametrize("override,message", [
    ("profile.epochs=0", "profile.epochs must be a positive integer"),
    ("profile.batch_size=0", "profile.batch_size must be a positive integer"),
    ("data.root=/nonexistent/fashion", "data.root=/nonexistent/fashion does not exist"),
    ("train.precision=fp8", "train.precision must be one of fp32, bf16, fp16"),
    ("data=imagefolder", "needs data.root="),
])
def test_a_bad_value_is_refused_before_anything_is_written(tmp_path, capsys, override, message):
    assert message in refused(["+step=resnet50", *SMOKE, override], tmp_path / "run", capsys)
    assert not (tmp_path / "run").exists()


def test_the_synthetic_data_is_learned_above_chance(tmp_path):
    summary = train(compose(["+step=separate_downsampling", *SMOKE, "profile.epochs=3", "logger.wandb.mode=disabled"]),
                    tmp_path)
    assert summary["best_top1"] > 20  # 10 classes: chance is 10


def test_a_finished_run_is_skipped_when_started_again(tmp_path, capsys):
    cfg = compose([*TINY, "profile.epochs=1"])
    train(cfg, tmp_path)
    before = (tmp_path / "summary.json").read_text()
    assert train(cfg, tmp_path) == json.loads(before)
    assert "already finished" in capsys.readouterr().out and (tmp_path / "summary.json").read_text() == before


def test_a_corrupt_checkpoint_is_an_error_not_a_silent_restart(tmp_path, capsys):
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    assert "is corrupt" in refused(TINY, tmp_path, capsys)
    assert (tmp_path / "last.pt").read_bytes() == b"not a checkpoint"


def test_a_checkpoint_of_another_config_is_an_error(tmp_path, capsys):
    train(compose([*TINY, "profile.epochs=1"]), tmp_path)
    (tmp_path / "summary.json").unlink()
    other = ["+step=gelu", *TINY[1:], "profile.epochs=1"]
    assert "belongs to another config" in refused(other, tmp_path, capsys)


def test_a_diverging_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    # step schedule: the lr is multiplied by 1e12 after the first of three epochs
    err = refused(["+step=resnet50", *SMOKE, "profile.epochs=3", "recipe.milestones=[30]", "recipe.gamma=1e12"],
                  tmp_path, capsys)
    assert "the loss became" in err and "last good checkpoint" in err and "is kept" in err
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    weights = [v for v in state["model"].values() if v.is_floating_point()]
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in weights)
    assert not (tmp_path / "summary.json").exists()


def test_a_loss_diverging_before_any_checkpoint_says_none_exists(tmp_path, capsys):
    err = refused(["+step=resnet50", *SMOKE, "recipe.lr=1e12"], tmp_path, capsys)
    assert "the loss became" in err and "No checkpoint had been saved yet" in err
    assert not (tmp_path / "last.pt").exists()


def test_a_convnext_variant_trains_under_its_own_label_with_the_papers_recipe_and_table_1_beside_it(tmp_path):
    """`model=convnext_t` trained with SGD and a step schedule under the label 'custom', with no paper reference."""
    summary = train(compose(["model=convnext_t", *SMOKE, "profile.epochs=1", "logger.wandb.mode=disabled"]),
                    tmp_path / "run")
    assert (summary["label"], summary["recipe"]) == ("convnext_t", "modern")
    assert (summary["paper_top1"], summary["paper_gflops"]) == (82.1, 4.5) and summary["params"] == 28_589_128
