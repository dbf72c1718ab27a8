"""The batch arithmetic (modernize.training.batch_plan): processes x device batch x accumulation = global batch."""

import pytest

from modernize.training.batch_plan import largest_fitting_batch, plan_batch
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
