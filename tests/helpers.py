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


def photo(width: int, height: int, seed: int):
    """A real-size RGB PIL image with structure at several scales (smooth gradients, edges, noise), so that
    interpolation kernels differ visibly."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([127 + 100 * np.sin(x / (7 + 5 * c) + y / (11 + 3 * c)) for c in range(3)], axis=-1)
    image[(x // 37 + y // 29) % 2 == 0] *= 0.6
    image += rng.normal(0, 12, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
