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


# the roadmap steps whose code paths differ most: ResNet-50's stem and BatchNorm, the inverted bottleneck, ConvNeXt-T
REPRESENTATIVE_STEPS = ("resnet50", "inverted_bottleneck", "separate_downsampling")
REPRESENTATIVE_NAMES = tuple(f"modernize_{step}" for step in REPRESENTATIVE_STEPS)  # timm's names of them


def fast_tier(values, representatives=REPRESENTATIVE_NAMES):
    """`values` as pytest parameters where `make test-fast` (the in-process tier, `-m "not slow"`) runs only
    `representatives` and `make test` runs every one: for cases that run the same code on different designs."""
    import pytest

    missing = set(representatives) - set(values)
    assert not missing, f"representatives not among the values: {missing}"
    def slow(value):  # a tuple holds one value per argument name
        return pytest.param(*value if isinstance(value, tuple) else (value,), marks=pytest.mark.slow)
    return [value if value in representatives else slow(value) for value in values]
