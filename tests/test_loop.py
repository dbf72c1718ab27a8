"""The training loop in-process, on tiny models: resume, precision and memory format, batch sources.

The same checks as the subprocess tests of test_train.py where a subprocess proves nothing extra, in seconds.
"""

import json

import pytest
import torch
from helpers import SMOKE
from torch import nn

from modernize import compose
from modernize import train as train_module
from modernize.batches import InMemoryBatches
from modernize.engine import prepare_batch
from modernize.runtime import Processes
from modernize.state import load_checkpoint
from modernize.train import save, setup, train

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
    cfg = compose([*TINY, "train.precision=bf16", "train.channels_last=true"])
    run = setup(cfg, tmp_path)
    seen = []

    def record(module, inputs, output):
        seen.append((output.dtype, inputs[0].is_contiguous(memory_format=torch.channels_last)))

    convs = [m for m in run.model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        conv.register_forward_hook(record)
    images, labels = next(run.batches.train_batches(epoch=0))
    run.step(*prepare_batch(images, labels, run.augment_train, run.mixing, run.memory_format))
    assert len(seen) == len(convs) and {dtype for dtype, _ in seen} == {torch.bfloat16}
    assert seen[0][1], "the stem's input is channels-last"
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
    from modernize import flops

    monkeypatch.setenv("MODERNIZE_CACHE_DIR", str(tmp_path))
    spec = train_module.model_spec(compose(["+step=resnet50", "model.width_multiplier=0.5"]))
    flops.paper_scale_stats.cache_clear()
    first = flops.paper_scale_stats(spec)
    assert len(list((tmp_path / "paper_scale").glob("*.json"))) == 1
    flops.paper_scale_stats.cache_clear()
    monkeypatch.setattr(flops, "measure", lambda *a, **k: pytest.fail("traced although the number was cached"))
    assert flops.paper_scale_stats(spec) == first
