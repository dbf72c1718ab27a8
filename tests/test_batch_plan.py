"""The batch arithmetic (modernize.training.batch_plan): processes x device batch x accumulation = global batch."""

import pytest

from modernize.training.batch_plan import (StepMemory, check_fits_on_cpu, cpu_step_memory, largest_fitting_batch,
                                         largest_fitting_on_cpu, plan_batch)
from modernize.training.runtime import RunError


def test_auto_divides_convnext_s_global_batch_of_4096_over_a_slurm_node_of_8_gpus():
    plan = plan_batch(4096, 8, 4e-3, accumulation="auto", device_batch=128, has_batch_norm=False)
    assert (plan.device_batch, plan.accumulation_steps, plan.global_batch) == (128, 4, 4096)
    assert plan.line() == ("batch: 8 process(es) x device batch 128 x 4 accumulation step(s) = global batch 4096; "
                           "lr 0.004; no BatchNorm")


def test_resnet50_reports_its_batch_norm_batch_which_is_the_device_batch():
    plan = plan_batch(256, 8, 0.1, accumulation="auto", device_batch=16, has_batch_norm=True)
    assert (plan.accumulation_steps, plan.batch_norm_batch) == (2, 16)
    assert plan.line().endswith("BatchNorm statistics over 16 images")


def test_auto_without_a_device_batch_or_a_gpu_takes_each_process_share_in_one_pass():
    plan = plan_batch(4096, 4, 4e-3, accumulation="auto", device_batch=None, has_batch_norm=False)
    assert (plan.device_batch, plan.accumulation_steps) == (1024, 1)


def test_auto_uses_the_measured_largest_fitting_batch_when_given():
    plan = plan_batch(4096, 8, 4e-3, accumulation="auto", device_batch=None, has_batch_norm=False,
                      largest_fitting=lambda per_process: 256)
    assert (plan.device_batch, plan.accumulation_steps) == (256, 2)


def test_an_explicit_accumulation_implies_the_device_batch():
    plan = plan_batch(4096, 8, 4e-3, accumulation=4, device_batch=None, has_batch_norm=False)
    assert plan.device_batch == 128


@pytest.mark.parametrize("processes, accumulation, device_batch, message", [
    (3, "auto", 128, "the global batch 4096 does not split over 3 processes (4096 / 3 = 1365): launch a number of "
                     "processes that divides 4096"),
    (8, "auto", 96, "the global batch 4096 cannot be met exactly with 8 process(es) x device batch 96: 4096 / (8 x "
                    "96) = 5.333 micro-batches; use train.device_batch=64 (the largest divisor of 512 below 96)"),
    (8, "auto", 1024, "train.device_batch=1024 is more than each process's share of the global batch (4096 / 8 "
                      "processes = 512): use at most 512"),
    (8, 3, None, "8 process(es) x 3 accumulation steps do not divide the global batch 4096 (512 per process / 3 = "
                 "170.7): use train.accumulation_steps=auto or a divisor of 512"),
    (8, 4, 64, "8 process(es) x train.device_batch=64 x train.accumulation_steps=4 = 2048, not the global batch "
               "4096: use train.accumulation_steps=auto, or train.device_batch=128"),
])
def test_a_global_batch_that_cannot_be_met_exactly_is_refused_with_the_numbers(processes, accumulation,
                                                                                device_batch, message):
    with pytest.raises(RunError) as e:
        plan_batch(4096, processes, 4e-3, accumulation=accumulation, device_batch=device_batch,
                   has_batch_norm=False)
    assert str(e.value) == message


def test_the_largest_fitting_batch_follows_a_step_s_measured_peak():
    """peak(b) = 2 GB of weights and optimizer state + 0.5 GB per image; 80% of 40 GB free holds 60 images: of the
    divisors of 512, 32."""
    gb = 1 << 30
    assert largest_fitting_batch(512, lambda b: 2 * gb + b * gb // 2, 40 * gb) == 32
    assert largest_fitting_batch(512, lambda b: 2 * gb + b * gb // 2, 1 * gb) == 1  # nothing fits: still one
    assert largest_fitting_batch(48, lambda b: b, 10**12) == 48


# ------------------------------------------------------------------------------ a training step's memory on the CPU
GIB = 2**30


def test_a_cpu_step_that_would_not_fit_is_refused_with_the_numbers_and_the_device_batch_that_fits():
    """ResNet-50 on the cpu profile at 1024 px grew past 17 GB and was ended by the OOM killer without a word."""
    memory = StepMemory(fixed=GIB, per_image=GIB // 4)  # 1 GiB + 256 MiB per image
    plan = plan_batch(128, 1, 0.1, accumulation=1, device_batch=None, has_batch_norm=True)
    with pytest.raises(RunError) as info:
        check_fits_on_cpu(plan, memory, available=8 * GIB, what="resnet50 at 1024 px on the CPU")
    # 80% of 8 GiB holds 1 GiB + 21 images: the largest divisor of 128 up to that is 16
    assert str(info.value) == (
        "resnet50 at 1024 px on the CPU: a training step at device batch 128 needs about 33.0 GiB (256 MiB per image, "
        "estimated) and this machine has 8.0 GiB available (a step may use 80%): use train.device_batch=16 "
        "train.accumulation_steps=auto (the same global batch 128 in 8 accumulation steps; accumulation_steps=auto "
        "alone picks it)")
    check_fits_on_cpu(plan_batch(128, 1, 0.1, accumulation=8, device_batch=None, has_batch_norm=True), memory,
                      available=8 * GIB, what="")  # 16 images a pass: fits
    with pytest.raises(RunError, match="use a lower profile.resolution or a smaller model"):
        check_fits_on_cpu(plan, StepMemory(fixed=8 * GIB, per_image=1), available=8 * GIB, what="")


def test_auto_accumulation_on_the_cpu_sizes_the_device_batch_to_fit():
    largest = largest_fitting_on_cpu(StepMemory(fixed=GIB, per_image=GIB // 4), available=8 * GIB)
    plan = plan_batch(128, 1, 0.1, accumulation="auto", device_batch=None, has_batch_norm=True,
                      largest_fitting=largest)
    assert (plan.device_batch, plan.accumulation_steps) == (16, 8)


@pytest.mark.slow  # a fresh process per measurement: its resident high-water mark (VmHWM) is its own
@pytest.mark.parametrize("step,resolution,batch", [("resnet50", 256, 48), ("inverted_bottleneck", 192, 32)])
def test_the_cpu_estimate_bounds_the_memory_a_real_training_step_adds(step, resolution, batch):
    """Two real training steps (the second with AdamW's or SGD's state) in a fresh process add at most the estimate
    to its resident memory, and not less than a third of it (an estimate of 10x would refuse runs that fit). At sizes
    where the memory matters (1 GiB and more of activations); below them a few hundred MiB of allocator and oneDNN
    overhead, which varied between processes in one test session, weigh more than the step."""
    from benchmarks.step_memory import measure  # the measurement docs/performance.md's table comes from

    grown, _, estimate = measure(step, resolution, batch, threads=1)
    assert estimate / 3 < grown <= estimate


def test_the_cpu_estimate_grows_with_the_pixels():
    import torch

    from modernize import compose
    from modernize.design.model import build
    from modernize.training.engine import memory_format_of
    from modernize.training.proxy import run_spec

    model = build(run_spec(compose(["+step=inverted_bottleneck"]), 10))
    at_32, at_64 = (cpu_step_memory(model, resolution, 10, memory_format_of(True)) for resolution in (32, 64))
    assert 3.5 < at_64.per_image / at_32.per_image < 4.5 and at_32.fixed == at_64.fixed > 0
    rng = torch.get_rng_state()
    cpu_step_memory(model, 32, 10, memory_format_of(True))
    assert torch.equal(torch.get_rng_state(), rng)  # the run's model and data draws are not moved
