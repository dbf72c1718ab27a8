"""Training speed by thread setting, on an idle machine and beside other busy processes (docs/performance.md).

    python benchmarks/threads.py                      # 2,560 training images per run, loads 0, 1 and 2
    python benchmarks/threads.py --images 6400 --loads 0 2

Each row is one real run (`python run.py +step=<step> profile.epochs=1 ...` with a training subset, the README's
short run made shorter) in a fresh process, so that OpenMP's environment (OMP_WAIT_POLICY) applies as it would to a
user's run. A load of N is N other processes that each keep one core busy (a Python loop), started before the run
and stopped after it: what another user's job does to a shared machine. The run's own measured img/s
(summary.json's train_images_per_s, the median over its logged steps) and its wall time are reported. Within a load
the settings run one after another, once each. The result is a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# (name, run.py overrides, environment): the settings compared
SETTINGS = {
    "threads=auto (the default)": ([], {}),
    "threads=null (PyTorch's: one per core)": (["train.threads=null"], {}),
    "threads=null, OMP_WAIT_POLICY=PASSIVE": (["train.threads=null"], {"OMP_WAIT_POLICY": "PASSIVE"}),
    "threads=null, GOMP_SPINCOUNT=10000": (["train.threads=null"], {"GOMP_SPINCOUNT": "10000"}),
    "threads=1": (["train.threads=1"], {}),
}
BUSY_LOOP = "while True:\n    pass"


def timed_run(step: str, images: int, overrides: list[str], env: dict[str, str], out: Path) -> tuple[float, float]:
    """(train img/s as the run measured it, wall seconds) of one short run into a fresh folder."""
    command = [sys.executable, str(REPO / "run.py"), f"+step={step}", "profile.epochs=1",
               f"profile.train_subset={images}", "profile.val_subset=1000", "logger.wandb.mode=disabled",
               f"out_root={out}", "sweep_name=threads", *overrides]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    (summary,) = out.glob("threads/*/summary.json")
    speed = json.loads(summary.read_text())["train_images_per_s"]
    return speed, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--step", default="inverted_bottleneck")
    parser.add_argument("--images", type=int, default=2560, help="training images per run (profile.train_subset)")
    parser.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2],
                        help="busy processes beside the run (each keeps one core busy)")
    args = parser.parse_args()
    rows = []
    for load in args.loads:
        busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(load)]
        try:
            for name, (overrides, env) in SETTINGS.items():
                with tempfile.TemporaryDirectory() as out:
                    speed, wall = timed_run(args.step, args.images, overrides, env, Path(out))
                rows.append((load, name, speed, wall))
                print(f"load {load}, {name}: {speed:.0f} img/s, {wall:.0f} s", file=sys.stderr, flush=True)
        finally:
            for process in busy:
                process.kill()
                process.wait()
    print(f"{args.step}, cpu profile, 1 epoch of {args.images:,} images, {os.cpu_count()} cores\n")
    print("| busy processes beside the run | setting | train img/s | wall s |")
    print("|---:|---|---:|---:|")
    for load, name, speed, wall in rows:
        print(f"| {load} | {name} | {speed:.0f} | {wall:.0f} |")


if __name__ == "__main__":
    main()
