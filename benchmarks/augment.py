"""Our batched augmentation (modernize.data.augment) against kornia.augmentation, op by op, ms per batch.

    pip install --no-deps kornia==0.9.0 kornia_rs==0.2.0   # or: --target DIR and PYTHONPATH=DIR
    PYTHONPATH=. python benchmarks/augment.py          # CPU, 1 thread, batch 128, 32 and 64 px

Both sides get the same uint8 batch [B, 3, S, S] at native size S (like Fashion-MNIST / CIFAR on the device)
and return S-px crops, so each row times the same work: ours on torchvision ops and one-call batched kernels,
kornia's modules with per-sample parameters (same_on_batch=False). Calls alternate (ours, kornia, ours, ...) so
that drift on a shared machine hits both alike; each number is the median of --repeats calls. The result is a
markdown table on stdout (docs/augmentation.md records one).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import kornia.augmentation as K
import torch
from kornia.augmentation.auto import RandAugment
from torchvision.transforms import v2

from modernize.data.augment import TrainAugment

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
RANDAUGMENT = (9, 0.5)  # the paper's "RandAugment (9, 0.5)"; kornia's m is on a 0..30 scale: 9/10 -> 27
ERASING = 0.25


def ours(size: int) -> dict[str, Callable]:
    aug = TrainAugment(resolution=size, mean=MEAN, std=STD, crop_scale=(0.08, 1.0), hflip=True,
                       randaugment=RANDAUGMENT, random_erasing=ERASING)
    flip_only = TrainAugment(resolution=size, mean=MEAN, std=STD, crop_scale=None, hflip=True)

    def erase(u8):
        return aug._random_erase(aug.normalize(u8.float()))

    def randaugment(u8):
        return aug._apply_randaugment(u8).float()

    # flip_only: TrainAugment without crop is float conversion, flip, normalize, like kornia's row below.
    return {"random resized crop": aug._random_resized_crop, "horizontal flip": flip_only,
            f"RandAugment {RANDAUGMENT}": randaugment, f"random erasing p={ERASING}": erase,
            "whole train pipeline": aug}


def kornia_ops(size: int) -> dict[str, Callable]:
    rrc = K.RandomResizedCrop((size, size), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    flip = K.RandomHorizontalFlip(p=0.5)
    normalize = K.Normalize(torch.tensor(MEAN), torch.tensor(STD))
    randaugment = RandAugment(n=2, m=27)
    erase = K.RandomErasing(scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0, p=ERASING)
    pipeline = torch.nn.Sequential(rrc, flip, randaugment, normalize, erase)

    def to_float(fn):  # kornia works on float images in [0, 1]: the conversion is part of its cost
        return lambda u8: fn(u8.float().div_(255))

    return {"random resized crop": to_float(rrc), "horizontal flip": to_float(lambda x: normalize(flip(x))),
            f"RandAugment {RANDAUGMENT}": to_float(randaugment),
            f"random erasing p={ERASING}": to_float(lambda x: erase(normalize(x))),
            "whole train pipeline": to_float(pipeline)}


def mixing_ops(num_classes: int) -> list[tuple[str, Callable, Callable]]:
    """torchvision's MixUp/CutMix (what modernize.training.train uses) against kornia's, on normalized float images."""
    return [("MixUp alpha 0.8", v2.MixUp(alpha=0.8, num_classes=num_classes),
             K.RandomMixUpV2(data_keys=["input", "class"])),
            ("CutMix alpha 1.0", v2.CutMix(alpha=1.0, num_classes=num_classes),
             K.RandomCutMixV2(beta=1.0, data_keys=["input", "class"]))]


def time_pair(a: Callable, b: Callable, repeats: int) -> tuple[float, float]:
    """Median ms per call of a() and b(), alternated, after one warm-up call each."""
    a(), b()
    times = ([], [])
    for _ in range(repeats):
        for fn, out in ((a, times[0]), (b, times[1])):
            start = time.perf_counter()
            fn()
            out.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"batch {args.batch}, CPU, {args.threads} thread(s), median of {args.repeats} alternated calls, "
          f"torch {torch.__version__}, kornia {__import__('kornia').__version__}\n")
    print("| op | px | ours (ms) | kornia (ms) | kornia/ours |")
    print("|---|---:|---:|---:|---:|")
    for size in args.sizes:
        images = torch.randint(0, 256, (args.batch, 3, size, size), dtype=torch.uint8)
        labels = torch.randint(0, 10, (args.batch,))
        kornia_by_name = kornia_ops(size)
        rows = [(name, functools.partial(fn, images), functools.partial(kornia_by_name[name], images))
                for name, fn in ours(size).items()]
        normalized = (images.float() - 127.5) / 64
        rows += [(f"{name} (ours: torchvision v2)", functools.partial(tv, normalized, labels),
                  functools.partial(kn, normalized, labels)) for name, tv, kn in mixing_ops(10)]
        for name, a, b in rows:
            ms_ours, ms_kornia = time_pair(a, b, args.repeats)
            print(f"| {name} | {size} | {ms_ours:.2f} | {ms_kornia:.2f} | {ms_kornia / ms_ours:.2f} |", flush=True)


if __name__ == "__main__":
    main()
