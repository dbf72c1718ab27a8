"""Data sets: readers, seeded subsets and the DataLoader for folder data. Augmentation is in :mod:`.augment`.

Two kinds of data flow through the trainer:

* Small data sets (Fashion-MNIST, CIFAR-10/100, synthetic) are held whole in memory as a
  :class:`TensorDataset` of uint8 images at their native size. Moved to the GPU once, they are
  sliced into batches there and augmented batched on the device (:class:`.augment.TrainAugment`), so
  no CPU worker pipeline can become the bottleneck for these tiny images.
* Folder data sets (ImageNet, Imagenette, Tiny-ImageNet) are too big for that and are read by a
  :class:`torch.utils.data.DataLoader` (:func:`make_loader`) whose workers run the official code's
  per-image pipeline (:func:`.augment.folder_transforms`: timm's create_transform, as the official
  ConvNeXt code), yielding normalised float tensors.

Subsets and synthetic data are seeded through private ``torch.Generator``\\ s built from ``seed``, so
they never consume the global stream that the augmentation draws from.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import sys
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ..io import cache_dir
from ..design.preprocessing import IMAGENET_MEAN_STD, Preprocessing
from .augment import folder_transforms, image_eval_transform

__all__ = [
    "DATASET_NAMES",
    "MEAN_STD",
    "DataBundle",
    "DataError",
    "TensorDataset",
    "load_data",
    "make_loader",
    "stratified_indices",
]

DATASET_NAMES = ("fashion_mnist", "cifar10", "cifar100", "imagefolder", "synthetic")
FOLDER_DATASETS = ("imagefolder",)  # read from disk by DataLoader workers; the others are held in memory


def is_folder(name: str) -> bool:
    """Whether data set `name` is read from image files by loader workers (else it is held whole in memory)."""
    return name in FOLDER_DATASETS

# Where the Debian/Ubuntu package `dataset-fashion-mnist` installs the gzipped idx files. A module
# constant so tests (and unusual installs) can point it elsewhere.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

# Used when `root` is None: downloads land here and are found again on the next run.

# Per-channel statistics in [0, 1] units (the usual published values), used to normalise on device.
MEAN_STD: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "fashion_mnist": ((0.2860,) * 3, (0.3530,) * 3),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagefolder": IMAGENET_MEAN_STD,  # ImageNet's, timm's constants
    "synthetic": ((0.5,) * 3, (0.25,) * 3),
}



class DataError(RuntimeError):
    """A data set could not be found or read; the message says what was wrong and how to fix it."""


# --------------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------------


@dataclass
class TensorDataset:
    """A whole small data set in memory, so it can live on the training device.

    ``images`` is uint8 ``[N, 3, H, W]`` at native resolution (resizing happens in
    :mod:`.augment`); uint8 keeps CIFAR's 50k images at 150 MB, a quarter of float32.
    Grayscale data is replicated to 3 channels so every model keeps the paper's 3-channel stem.
    """

    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        # Catch shape/dtype mistakes here, not as a confusing error deep inside a training step.
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"TensorDataset.images must be uint8 [N, 3, H, W], got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"TensorDataset.labels must be int64 [{self.images.shape[0]}], got {self.labels.dtype} "
                f"{tuple(self.labels.shape)}"
            )

    def to(self, device: torch.device | str) -> TensorDataset:
        return TensorDataset(self.images.to(device), self.labels.to(device))

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        # Lets a TensorDataset also be fed through a DataLoader, like the folder data sets.
        return self.images[index], self.labels[index]


@dataclass
class DataBundle:
    """Train/val splits plus everything the trainer needs to know about them.

    For ``imagefolder`` the splits are ``torch.utils.data.Dataset``\\ s yielding
    ``(uint8 [3, resolution, resolution] tensor, int label)``; otherwise :class:`TensorDataset`.
    """

    train: TensorDataset | Dataset | None  # None: loaded for evaluation only
    val: TensorDataset | Dataset
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str
    val_total: int | None = None  # the validation split's images before any subset


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def load_data(
    name: str,
    root: str | os.PathLike | None,
    *,
    resolution: int,
    train_subset: int | None = None,
    val_subset: int | None = None,
    seed: int = 0,
    synthetic_size: int = 512,
    synthetic_classes: int = 10,
    download: bool = True,
    recipe: Mapping[str, Any] | None = None,
    with_train: bool = True,
    eval_preprocessing: Preprocessing | None = None,
) -> DataBundle:
    """Load data set ``name`` (one of :data:`DATASET_NAMES`).

    ``root`` is the folder holding the data (None: modernize.io.cache_dir(); unused by ``synthetic``). ``resolution``
    only matters for ``imagefolder`` (crop size in the loader) and ``synthetic`` (image size); tensor data sets keep
    their native size. ``recipe`` (as the profile trains it, modernize.training.proxy) gives ``imagefolder``'s loader
    workers the official code's per-image transforms (augment.folder_transforms; None: the evaluation transform for both
    splits); in-memory data sets are augmented batched by augment.TrainAugment instead. ``with_train=False`` reads the
    validation split only (``train`` is None): an image folder then needs no train/ (task=eval), and a folder of class
    folders without val/ (ImageNet-R's, -A's layout) is read as the validation split. ``eval_preprocessing``: the record
    of the model being evaluated, whose transform an image folder's validation images get
    (modernize.design.preprocessing; None: the data set's own statistics at ``resolution``, as training evaluates).
    ``train_subset``/``val_subset`` keep a seeded, class-stratified subset of that many samples. ``download`` lets
    ``fashion_mnist`` (the only data set small enough to fetch silently) download via torchvision as a last resort.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown data set {name!r}; valid names are: {', '.join(DATASET_NAMES)}")
    root_path = Path(root).expanduser() if root is not None else None

    if name == "fashion_mnist":
        train, val = _load_fashion_mnist(root_path, download=download)
        num_classes = 10
    elif name in ("cifar10", "cifar100"):
        train, val = _load_cifar(name, root_path)
        num_classes = 10 if name == "cifar10" else 100
    elif name == "imagefolder":
        train_tf, val_tf = folder_transforms(recipe, resolution=resolution, mean=MEAN_STD[name][0],
                                             std=MEAN_STD[name][1])
        if eval_preprocessing is not None:
            val_tf = image_eval_transform(eval_preprocessing)
        train, val, num_classes = _load_imagefolder(root_path, train_tf if with_train else None, val_tf)
    else:
        train, val = _make_synthetic(synthetic_size, synthetic_classes, resolution, seed)
        num_classes = synthetic_classes

    # Different seeds per split so the two subsets are not drawn with the same random stream.
    train = _subset(train, train_subset, seed) if with_train else None
    val_total = len(val)
    val = _subset(val, val_subset, seed + 1)
    mean, std = MEAN_STD[name]
    return DataBundle(train=train, val=val, num_classes=num_classes, mean=mean, std=std, name=name,
                      val_total=val_total)


# --------------------------------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------------------------------

_FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "val_images": "t10k-images-idx3-ubyte",
    "val_labels": "t10k-labels-idx1-ubyte",
}
_IDX_IMAGES_MAGIC = 2051  # 0x00000803: uint8 data, 3 dimensions
_IDX_LABELS_MAGIC = 2049  # 0x00000801: uint8 data, 1 dimension


def _load_fashion_mnist(root: Path | None, *, download: bool) -> tuple[TensorDataset, TensorDataset]:
    if root is not None:
        # data.root given: the files must be there. Falling back to another copy would train on other data than the
        # user pointed at, without a word.
        for folder in (root, root / "FashionMNIST" / "raw"):
            files = _find_idx_files(folder)
            if files is not None:
                return _read_fashion_mnist(files)
        found = [stem for stem in _FASHION_FILES.values()
                 if (root / stem).is_file() or (root / f"{stem}.gz").is_file()]
        missing = [stem for stem in _FASHION_FILES.values() if stem not in found]
        raise DataError(
            f"data.root={root} lacks Fashion-MNIST's {', '.join(missing)} (plain or .gz; found: "
            f"{', '.join(found) or 'none of the four'}; also looked in {root / 'FashionMNIST' / 'raw'}). Fix: put "
            f"the four idx files there, or leave data.root unset to use Debian's copy in {FASHION_MNIST_SYSTEM_DIR} "
            f"(`sudo apt-get install dataset-fashion-mnist`, or `make data`)."
        )
    cache = cache_dir()
    # Debian's package, then where an earlier run's download went, so it is reused instead of fetched again.
    candidates = [FASHION_MNIST_SYSTEM_DIR, cache / "FashionMNIST" / "raw"]
    for folder in candidates:
        files = _find_idx_files(folder)
        if files is not None:
            return _read_fashion_mnist(files)

    download_note = "download disabled (download=False)"
    if download:
        try:
            torchvision.datasets.FashionMNIST(str(cache), train=True, download=True)
        except Exception as exc:  # noqa: BLE001 - offline, proxy, full disk...: all end in the DataError below
            download_note = f"download into {cache} failed: {type(exc).__name__}: {exc}"
        else:
            files = _find_idx_files(cache / "FashionMNIST" / "raw")
            if files is not None:
                return _read_fashion_mnist(files)
            download_note = f"download into {cache} finished but left no idx files"

    searched = ", ".join(str(c) for c in candidates)
    raise DataError(
        f"Fashion-MNIST not found. Looked for {', '.join(_FASHION_FILES.values())} (plain or .gz) in: "
        f"{searched}; {download_note}. Fix: `sudo apt-get install dataset-fashion-mnist` (or `make data`), "
        f"or pass data.root=<folder containing the four idx files>."
    )


def _find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four idx files in ``folder`` (each plain or gzipped), or None unless all are there."""
    found = {}
    for key, stem in _FASHION_FILES.items():
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def _read_fashion_mnist(files: dict[str, Path]) -> tuple[TensorDataset, TensorDataset]:
    def split(prefix: str) -> TensorDataset:
        images = _read_idx(files[f"{prefix}_images"], _IDX_IMAGES_MAGIC)
        labels = _read_idx(files[f"{prefix}_labels"], _IDX_LABELS_MAGIC)
        if len(images) != len(labels):
            raise DataError(
                f"{files[f'{prefix}_images']} has {len(images)} images but {files[f'{prefix}_labels']} "
                f"has {len(labels)} labels; re-fetch the data set."
            )
        # [N, 28, 28] grayscale -> [N, 3, 28, 28]: expand is free, contiguous() makes it a real copy
        # so slicing and .to(device) behave like any other image tensor.
        images_t = torch.from_numpy(images).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
        return TensorDataset(images_t, torch.from_numpy(labels.astype(np.int64)))

    return split("train"), split("val")


def _read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Parse an idx file (LeCun's MNIST format), gzipped or plain.

    torchvision's ``read_sn3_pascalvincent_tensor`` only opens plain files, while the Debian
    package ships .gz, so we parse the (trivial) format ourselves: a big-endian int32 magic
    (0x0000 08 ND: uint8 data with ND dimensions), ND big-endian int32 sizes, then the raw bytes.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # unreadable; a truncated (EOFError) or corrupt .gz
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc}): the file is truncated or corrupt; "
                        f"re-fetch the Fashion-MNIST files (`sudo apt-get install --reinstall "
                        f"dataset-fashion-mnist`).") from None
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic != expected_magic:
        raise DataError(
            f"{path} is not an idx file of the expected kind (magic {magic}, expected {expected_magic}); "
            f"re-fetch the Fashion-MNIST files."
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    # bytearray: a writable buffer, so torch.from_numpy gets memory it may own and modify.
    payload = np.frombuffer(bytearray(data), dtype=np.uint8, offset=header)
    if payload.size != math.prod(dims):
        raise DataError(f"{path} is truncated or corrupt: header says {dims}, found {payload.size} bytes.")
    return payload.reshape(dims)


# --------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100
# --------------------------------------------------------------------------------------------------


def _load_cifar(name: str, root: Path | None) -> tuple[TensorDataset, TensorDataset]:
    # File layout (folder name, batch files) comes from torchvision's classes so both agree on what a
    # CIFAR root looks like. We read the pickles ourselves because torchvision's constructor insists
    # on the md5 of each official file: correct for real data, but it rejects any other well-formed
    # file in the same format (e.g. the small ones the tests write), and it indexes entries by str
    # keys, which fails on pickles written by Python 3 with bytes keys.
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    base = root if root is not None else cache_dir()
    needed = [f for f, _md5 in cls.train_list + cls.test_list]
    # Accept both the parent folder (torchvision's convention) and the extracted folder itself.
    candidates = [base / cls.base_folder, base]
    folder = next((c for c in candidates if all((c / f).is_file() for f in needed)), None)
    if folder is None:
        raise DataError(
            f"{name} not found: expected {', '.join(needed)} in {candidates[0]} (or {candidates[1]}). "
            f"Fix: download and extract the python version, e.g. "
            f"`python -c \"import torchvision; torchvision.datasets.{cls.__name__}('{base}', download=True)\"`, "
            f"or `tar xzf {cls.filename} -C {base}` after fetching {cls.url}; "
            f"or pass data.root=<folder containing {cls.base_folder}>."
        )

    def split(files: list[list[str]]) -> TensorDataset:
        images, labels = [], []
        for file_name, _md5 in files:
            batch = _read_cifar_pickle(folder / file_name)
            label_key = "labels" if "labels" in batch else "fine_labels"
            if "data" not in batch or label_key not in batch:
                raise DataError(
                    f"{folder / file_name} lacks 'data' or '{label_key}'; is it a CIFAR python batch? "
                    f"Re-extract {cls.filename}."
                )
            images.append(np.asarray(batch["data"], dtype=np.uint8))
            labels.extend(batch[label_key])
        # Rows are 3072 bytes: the 1024 red, then green, then blue values of a 32x32 image: CHW already.
        data = np.concatenate(images).reshape(-1, 3, 32, 32)
        return TensorDataset(torch.from_numpy(data), torch.tensor(labels, dtype=torch.int64))

    return split(cls.train_list), split(cls.test_list)


def _read_cifar_pickle(path: Path) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            # latin1 is what the official Python 2 pickles need to load numpy arrays under Python 3.
            raw = pickle.load(f, encoding="latin1")
    except Exception as exc:
        raise DataError(f"cannot unpickle {path} ({exc}); re-extract the CIFAR archive.") from exc
    # Py2-written files have str keys, Py3-written ones bytes keys (b'data'); accept both.
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


# --------------------------------------------------------------------------------------------------
# Image folders (ImageNet, Imagenette, Tiny-ImageNet)
# --------------------------------------------------------------------------------------------------


def _load_imagefolder(root: Path | None, train_tf, val_tf) -> tuple[Dataset | None, Dataset, int]:
    """train/ and val/ under root as ImageFolders with their transforms (train_tf None: val/ only)."""
    if root is None:
        raise DataError("imagefolder needs data.root=<folder with train/ and val/ class subfolders>.")
    splits = {}
    for split, tf in (("train", train_tf), ("val", val_tf)):
        if tf is None:
            continue
        folder = root / split
        if split == "val" and train_tf is None and not folder.is_dir() and _has_class_folders(root):
            folder = root  # evaluation only: a flat folder of class folders is the validation set
        if not folder.is_dir():
            raise DataError(
                f"imagefolder: {folder} does not exist. data.root must contain train/ and val/, each with one "
                f"subfolder of images per class (to evaluate, val/ alone or the class folders themselves are "
                f"enough; ImageNet's flat val/ and Tiny-ImageNet's "
                f"val/images + val_annotations.txt must first be sorted into class subfolders)."
            )
        try:
            splits[split] = torchvision.datasets.ImageFolder(str(folder), transform=tf, loader=load_image)
        except FileNotFoundError as exc:  # no class folders, or class folders without images
            raise DataError(
                f"imagefolder: {folder} holds no usable class subfolders of images: {exc}"
            ) from exc
    train, val = splits.get("train"), splits["val"]
    # A class present in only one split would shift every label index after it: refuse silently
    # wrong labels.
    if train is not None and train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))
        only_val = sorted(set(val.classes) - set(train.classes))
        raise DataError(
            f"imagefolder: train/ and val/ under {root} have different class folders "
            f"(only in train: {only_train[:5]}, only in val: {only_val[:5]}); they must match exactly."
        )
    return train, val, len(val.classes)


def _has_class_folders(root: Path) -> bool:
    return root.is_dir() and any(child.is_dir() and child.name not in ("train", "val") for child in root.iterdir())


def image_folder_layout(root: Path, looked_at: int = 20) -> str | None:
    """What makes `root` a folder of images ('train/ and val/ class folders', 'class folders of images'), or None.
    Only the first `looked_at` entries of each folder are read, so a folder of a million images costs nothing."""
    def images_in(folder: Path) -> bool:
        return any(path.is_file() and path.suffix.lower() in torchvision.datasets.folder.IMG_EXTENSIONS
                   for path in _first(folder.iterdir(), looked_at))

    def class_folders_of_images(folder: Path) -> bool:
        return folder.is_dir() and any(child.is_dir() and images_in(child)
                                       for child in _first(folder.iterdir(), looked_at))

    if not root.is_dir():
        return None
    splits = [split for split in ("train", "val") if class_folders_of_images(root / split)]
    if splits:
        return f"{' and '.join(s + '/' for s in splits)} class folder{'s' * (len(splits) > 1)} of images"
    return "class folders of images" if class_folders_of_images(root) else None


def _first(paths, count: int) -> list[Path]:
    return [path for path, _ in zip(paths, range(count))]


def load_for_run(cfg, recipe: Mapping[str, Any], *, with_train: bool = True, val_subset: int | None | str = "profile",
                 eval_preprocessing: Preprocessing | None = None) -> DataBundle:
    """load_data with a run config's data and profile sections: the one call of training and task=eval (which names
    its own `val_subset`, never the profile's training-data limit, and the evaluated model's preprocessing)."""
    data, profile = cfg.data, cfg.profile
    resolution = eval_preprocessing.resolution if eval_preprocessing is not None else profile.resolution
    return load_data(data.name, data.root, resolution=resolution, train_subset=profile.train_subset,
                     val_subset=profile.val_subset if val_subset == "profile" else val_subset, seed=cfg.seed,
                     synthetic_size=data.get("size", 512), synthetic_classes=data.get("classes", 10), recipe=recipe,
                     with_train=with_train, eval_preprocessing=eval_preprocessing)


# A file that does not decode (truncated JPEG/PNG, a non-image named .jpg) stops the run at the first one met, with
# one line naming it: skipping it would train on another data set than the one named in the config, and drop a
# different set of images on each process and each epoch. The run resumes from its last checkpoint after the file is
# replaced or removed; `python -m modernize.datasets --check <data.root>` lists every bad file before a long run.
def load_image(path: str):
    """An ImageFolder image, decoded in full now (PIL decodes lazily), as RGB; DataError naming a bad file."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            image.load()
            return image.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError... for bad files
        raise DataError(
            f"{path} is not a readable image ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}). Fix: "
            f"replace or delete it (`python -m modernize.datasets --check <data.root>` lists every bad file), then "
            f"run the same command: the run resumes from its last checkpoint."
        ) from None


def worker_error(error: DataError) -> DataError:
    """The one-line DataError a DataLoader worker raised, without the worker traceback torch wraps it in."""
    lines = str(error).strip().splitlines()
    marker = "DataError: "
    if len(lines) > 1 and marker in lines[-1]:
        return DataError(lines[-1].split(marker, 1)[1])
    return error


def check_images(root: Path) -> list[str]:
    """The files under root/train and root/val that an ImageFolder run would fail on, each with its reason."""
    bad = []
    for split in ("train", "val"):
        for path, _label in torchvision.datasets.ImageFolder(str(root / split)).samples:
            try:
                load_image(path)
            except DataError as exc:
                bad.append(str(exc).split(". Fix:", 1)[0])
    return bad


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    workers: int,
    distributed: bool,
    seed: int,
    drop_last: bool,
    rank: int = 0,
) -> DataLoader:
    """A DataLoader for the folder data sets.

    With ``distributed`` every rank reads its own shard through a DistributedSampler; the trainer
    must call ``loader.sampler.set_epoch(epoch)`` each epoch or every epoch repeats one order.
    The sampler's ``seed`` is the same on every rank (one shared permutation, split into shards); the
    generator that seeds the workers (hence their crops, flips and RandAugment draws) is ``seed + rank``, as the
    official code seeds each rank's RNG with seed + rank: otherwise every rank would draw the same stream.
    """
    generator = torch.Generator().manual_seed(seed + rank)
    sampler = None
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,  # the sampler shuffles when there is one
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),  # page-locked batches allow async host->GPU copies
        persistent_workers=workers > 0,  # avoid re-forking workers (and re-opening files) every epoch
        drop_last=drop_last,
        generator=generator,
    )


# --------------------------------------------------------------------------------------------------
# Memory: an in-memory data set is refused before it is made if it would not fit
# --------------------------------------------------------------------------------------------------
# The data sets held in memory keep their own resolution (28 px Fashion-MNIST stays 28 px at profile=imagenet's
# 224: augment.py resizes each batch), so only data made at the run's resolution (synthetic) or a copy onto a GPU
# can outgrow a device. Either is refused before it is allocated, with the numbers, instead of being killed by the
# kernel's OOM killer with no message.


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Bytes free on `device`: CUDA's free memory, or the host's MemAvailable (None where it cannot be read)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB"


def where(device: torch.device | str) -> str:
    device = torch.device(device)
    return "this machine" if device.type == "cpu" else str(device)


def check_fits_in_memory(what: str, nbytes: int, remedy: str, device: torch.device | str = "cpu") -> None:
    free = available_bytes(device)
    if free is not None and nbytes > free:
        raise DataError(f"{what} would need {gib(nbytes)} of memory and {where(device)} has "
                        f"{gib(free)} available: {remedy}")


def check_synthetic_fits(size: int, resolution: int) -> None:
    """The synthetic splits are made at the run's resolution: per pixel a float32 noise, a float32 sum and the
    uint8 result."""
    images = size + max(1, size // 4)
    check_fits_in_memory(f"data=synthetic at resolution {resolution} ({images} images, made at that resolution)",
                         images * 3 * resolution * resolution * (4 + 4 + 1), "lower profile.resolution or data.size")


def check_fits_on_device(data: TensorDataset, device: torch.device) -> None:
    """A data set copied onto a GPU must fit its free memory (on the CPU it is already where it stays)."""
    if device.type != "cpu":
        check_fits_in_memory(f"the training images ({len(data)} x {tuple(data.images.shape[1:])} uint8)",
                             data.images.numel(), "use a folder data set (data=imagefolder), which the loader "
                             "workers read per batch, or a smaller profile.train_subset", device)


# --------------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------------


def _make_synthetic(
    size: int, num_classes: int, resolution: int, seed: int
) -> tuple[TensorDataset, TensorDataset]:
    """A learnable toy problem: each class is a smooth colour pattern, samples add strong noise.

    Learnable so smoke tests can see accuracy rise above chance; noisy so it is not solved in one
    step. Class prototypes come from ``seed`` alone so train and val share them (otherwise val
    would be unlearnable); each split then has its own sample stream.
    """
    if size < 1 or num_classes < 1:
        raise ValueError(f"synthetic data needs size >= 1 and classes >= 1, got {size}, {num_classes}")
    proto_gen = torch.Generator().manual_seed(seed)
    base_color = torch.rand(num_classes, 3, 1, 1, generator=proto_gen) * 128 + 64
    # A 4x4 random pattern upsampled to full size: spatial structure a conv net can pick up.
    coarse = torch.randn(num_classes, 3, 4, 4, generator=proto_gen) * 40
    pattern = torch.nn.functional.interpolate(coarse, size=(resolution, resolution), mode="bilinear")
    prototypes = base_color + pattern

    def draw(n: int, stream: int) -> TensorDataset:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + stream)
        labels = torch.arange(n) % num_classes  # balanced classes
        labels = labels[torch.randperm(n, generator=gen)]
        noise = torch.randn(n, 3, resolution, resolution, generator=gen) * 48
        images = (prototypes[labels] + noise).round().clamp(0, 255).to(torch.uint8)
        return TensorDataset(images, labels.to(torch.int64))

    return draw(size, 1), draw(max(1, size // 4), 2)


# --------------------------------------------------------------------------------------------------
# Subsets
# --------------------------------------------------------------------------------------------------


def _subset(dataset: TensorDataset | Dataset, n: int | None, seed: int) -> TensorDataset | Dataset:
    if n is None:
        return dataset
    total = len(dataset)
    if n < 1:
        raise ValueError(f"subset size must be >= 1, got {n}")
    if n >= total:
        if n > total:
            warnings.warn(f"subset of {n} requested from {total} samples: using all of them", stacklevel=3)
        return dataset
    labels = dataset.labels if isinstance(dataset, TensorDataset) else torch.as_tensor(dataset.targets)
    indices = stratified_indices(labels.cpu(), n, seed)
    if isinstance(dataset, TensorDataset):
        return TensorDataset(dataset.images[indices], dataset.labels[indices])
    return Subset(dataset, indices.tolist())


def stratified_indices(labels: Tensor, n: int, seed: int) -> Tensor:
    """``n`` seeded indices whose class proportions match ``labels`` as closely as possible.

    Shuffle, rank each sample within its class, then take the ``n`` smallest
    ``(rank + 0.5) / class_size``: that interleaves classes in proportion to their size, so small
    subsets of balanced data sets are balanced too (plain random sampling is not).
    """
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(labels), generator=gen)
    shuffled = labels[perm]
    order = torch.sort(shuffled, stable=True).indices  # group by class, keeping the shuffled order
    counts = torch.bincount(shuffled)
    class_start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order)) - class_start[shuffled[order]]
    key = (rank.double() + 0.5) / counts[shuffled].double()
    chosen = perm[torch.sort(key, stable=True).indices[:n]]
    # Original order: cheaper for file-backed data sets and irrelevant for shuffled training.
    return torch.sort(chosen).values


def main(argv: list[str] | None = None) -> int:
    """`python -m modernize.datasets --check <root>`: the images of an image folder that do not decode."""
    import argparse

    parser = argparse.ArgumentParser(description="List the images of an ImageFolder data set that do not decode.")
    parser.add_argument("--check", type=Path, required=True, metavar="DATA_ROOT", help="folder with train/ and val/")
    root = parser.parse_args(argv).check
    missing = [split + "/" for split in ("train", "val") if not (root / split).is_dir()]
    why = f"it has no {' and no '.join(missing)} folder" if missing else ""
    if not why:
        try:
            bad_files = check_images(root)
        except FileNotFoundError as e:  # ImageFolder's: a split without class folders or images
            why = str(e).rstrip(".")
    if why:
        print(f"error: --check reads an image folder (<root>/train/<class>/<image> and <root>/val/...), and {root} "
              f"is not one: {why}. The other data sets (Fashion-MNIST's idx files, CIFAR's batches) are checked "
              f"when a run loads them.", file=sys.stderr)
        return 2
    print("\n".join(bad_files) or "all images decode")
    return 1 if bad_files else 0
