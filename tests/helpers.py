"""Running the real CLI in a subprocess, as a user would."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A tiny deterministic run on generated data: seconds on a CPU, bit-for-bit repeatable.
SMOKE = ["profile=smoke", "data=synthetic", "train.deterministic=true", "train.threads=1", "train.device=cpu"]


def env() -> dict:
    e = dict(os.environ)
    e.setdefault("WANDB_MODE", "disabled")
    e["PYTHONWARNINGS"] = "ignore"
    return e


def run_cli(*args: str, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env())
    if check and proc.returncode != 0:
        raise AssertionError(f"run.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def popen_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "run.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env(), start_new_session=True)
