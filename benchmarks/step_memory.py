"""A training step's memory on the CPU: what modernize's estimate says against what two real steps add.

    python benchmarks/step_memory.py                   # the rows of docs/performance.md, section 7
    python benchmarks/step_memory.py --rows resnet50:448:64

Each row runs in a fresh process (its resident high-water mark, /proc/self/status VmHWM, is the process's own; ru_maxrss
would also count the parent's memory, copied at fork): it builds the step's model at the cpu profile's width with the
run's training step (modernize.training.train.step_to_measure), takes modernize.training.batch_plan.cpu_step_memory's
estimate, then runs two training steps on a random batch and reports how much they raised the resident memory above what
the process held before them. "saved" is what autograd keeps for the backward pass (the estimate's base); the estimate
is STEP_OVER_SAVED x saved + a constant + the weights' copies. The result is a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

ROWS = ("resnet50:64:64", "resnet50:128:32", "separate_downsampling:128:32", "inverted_bottleneck:128:32",
        "gelu:256:32", "resnet50:448:16", "resnet50:448:64")
MEASURE = """
import sys, torch
from modernize import compose
from modernize.training.batch_plan import STEP_OVER_SAVED, cpu_step_memory, input_bytes
from modernize.training.engine import memory_format_of, random_batch
from modernize.training.train import step_to_measure, run_plan_of
step_name, resolution, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg = compose([f"+step={step_name}", f"profile.resolution={resolution}"])
torch.set_num_threads(int(sys.argv[4]))
step = step_to_measure(cfg, 10, torch.device("cpu"), run_plan_of(cfg))
memory = cpu_step_memory(step.model, resolution, 10, memory_format_of(True))
saved = batch * (memory.per_image - input_bytes(resolution)) / STEP_OVER_SAVED
x, y = random_batch(batch, resolution, 10, torch.device("cpu"), memory_format_of(True))
resident = int(open("/proc/self/statm").read().split()[1]) * 4096
step(x, y)
step(x, y)
peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
print(peak - resident, int(saved), memory.at(batch))
"""


def measure(step: str, resolution: int, batch: int, threads: int) -> tuple[int, int, int]:
    """(bytes two training steps added, bytes autograd saved, the estimate) of one row, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", MEASURE, step, str(resolution), str(batch), str(threads)],
                         check=True, capture_output=True, text=True).stdout.split()
    added, saved, estimate = (int(v) for v in out[-3:])
    return added, saved, estimate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), help="step:resolution:batch (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    mib = 2**20
    print(f"cpu profile width, {args.threads} threads\n")
    print("| step | px | batch | saved MiB | two steps added MiB | added / saved | estimate MiB | added / estimate |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in args.rows:
        step, resolution, batch = row.split(":")
        added, saved, estimate = measure(step, int(resolution), int(batch), args.threads)
        print(f"| {step} | {resolution} | {batch} | {saved / mib:.0f} | {added / mib:.0f} | {added / saved:.2f} | "
              f"{estimate / mib:.0f} | {added / estimate:.2f} |", flush=True)


if __name__ == "__main__":
    main()
