"""Small data and weight files the tests write: data sets in their real formats (Fashion-MNIST's idx files, CIFAR's
pickles, an image folder) and a timm ConvNeXt state dict in the official repository's key names."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def write_idx_images(path: Path, images: np.ndarray) -> None:
    payload = struct.pack(">IIII", 2051, *images.shape) + images.astype(np.uint8).tobytes()
    _write_maybe_gz(path, payload)



def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    payload = struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()
    _write_maybe_gz(path, payload)



def _write_maybe_gz(path: Path, payload: bytes) -> None:
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)



def write_fashion_mnist(folder: Path, n_train: int, n_val: int, *, gz: bool) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "val_images": rng.integers(0, 256, (n_val, 28, 28), dtype=np.uint8),
        "val_labels": rng.integers(0, 10, n_val, dtype=np.uint8),
    }
    ext = ".gz" if gz else ""
    write_idx_images(folder / f"train-images-idx3-ubyte{ext}", arrays["train_images"])
    write_idx_labels(folder / f"train-labels-idx1-ubyte{ext}", arrays["train_labels"])
    write_idx_images(folder / f"t10k-images-idx3-ubyte{ext}", arrays["val_images"])
    write_idx_labels(folder / f"t10k-labels-idx1-ubyte{ext}", arrays["val_labels"])
    return arrays



def write_cifar10(root: Path, per_batch: int) -> dict[str, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    all_data, all_labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch_data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch_labels = rng.integers(0, 10, per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump(
                {
                    b"batch_label": name.encode(),
                    b"data": batch_data,
                    b"labels": batch_labels,
                    b"filenames": [b"x.png"] * per_batch,
                },
                f,
                protocol=2,
            )
        all_data.append(batch_data)
        all_labels.append(batch_labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072}, f, protocol=2)
    return {
        "train_data": np.concatenate(all_data[:5]),
        "train_labels": np.concatenate(all_labels[:5]),
        "test_data": all_data[5],
        "test_labels": np.array(all_labels[5]),
    }



def write_cifar100(root: Path, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        d = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump(
                {
                    b"filenames": [b"x.png"] * n,
                    b"batch_label": name.encode(),
                    b"fine_labels": fine,
                    b"coarse_labels": [x // 5 for x in fine],
                    b"data": d,
                },
                f,
                protocol=2,
            )
        out[name] = (d, np.array(fine))
    with open(folder / "meta", "wb") as f:
        pickle.dump(
            {
                b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                b"coarse_label_names": [f"c{i}".encode() for i in range(20)],
            },
            f,
            protocol=2,
        )
    return out



def write_imagefolder(
    root: Path, classes=("cat", "dog", "fox"), per_class=4, splits=("train", "val")
) -> None:
    rng = np.random.default_rng(3)
    for split in splits:
        for cls in classes:
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(per_class):
                h, w = int(rng.integers(20, 48)), int(rng.integers(20, 48))
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"{i}.png")



