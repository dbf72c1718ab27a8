"""Tests for modernize.datasets: every loader reads real on-disk formats written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from PIL import Image

from files import write_cifar10, write_cifar100, write_fashion_mnist, write_idx_labels, write_imagefolder
from modernize.data import datasets
from modernize.data.datasets import DataError, TensorDataset, load_data, make_loader

# --------------------------------------------------------------------------------------------------
# Helpers writing the real formats
# --------------------------------------------------------------------------------------------------



# --------------------------------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx_files(tmp_path, gz):
    arrays = write_fashion_mnist(tmp_path, 20, 8, gz=gz)
    bundle = load_data("fashion_mnist", tmp_path, resolution=32, download=False)
    assert bundle.num_classes == 10 and bundle.name == "fashion_mnist"
    assert bundle.mean == (0.2860,) * 3 and bundle.std == (0.3530,) * 3
    assert bundle.train.images.shape == (20, 3, 28, 28) and bundle.train.images.dtype == torch.uint8
    assert bundle.val.images.shape == (8, 3, 28, 28)
    for c in range(3):  # grayscale replicated, native size kept
        assert np.array_equal(bundle.train.images[:, c].numpy(), arrays["train_images"])
    assert bundle.train.labels.dtype == torch.int64
    assert np.array_equal(bundle.train.labels.numpy(), arrays["train_labels"])
    assert np.array_equal(bundle.val.labels.numpy(), arrays["val_labels"])


def test_fashion_mnist_torchvision_layout(tmp_path):
    # What torchvision's FashionMNIST(download=True) leaves behind: root/FashionMNIST/raw/<plain idx>.
    write_fashion_mnist(tmp_path / "FashionMNIST" / "raw", 6, 4, gz=False)
    bundle = load_data("fashion_mnist", tmp_path, resolution=28, download=False)
    assert len(bundle.train) == 6 and len(bundle.val) == 4


def test_fashion_mnist_bad_magic_is_data_error(tmp_path):
    write_fashion_mnist(tmp_path, 4, 4, gz=False)
    write_idx_labels(tmp_path / "train-images-idx3-ubyte", np.zeros(4))  # labels where images belong
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_data("fashion_mnist", tmp_path, resolution=28, download=False)


@pytest.mark.skipif(not datasets.FASHION_MNIST_SYSTEM_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_system_package_used_without_a_root():
    bundle = load_data("fashion_mnist", None, resolution=28, download=False)
    assert bundle.train.images.shape == (60000, 3, 28, 28)
    assert bundle.val.images.shape == (10000, 3, 28, 28)
    assert torch.equal(torch.bincount(bundle.val.labels), torch.full((10,), 1000))


def test_fashion_mnist_missing_raises_helpful_error(tmp_path, monkeypatch):
    missing = tmp_path / "no-system-copy"
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIR", missing)
    with pytest.raises(DataError) as info:
        load_data("fashion_mnist", tmp_path, resolution=28, download=False)
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(missing) in message and str(tmp_path) in message and "data.root" in message


# --------------------------------------------------------------------------------------------------
# CIFAR
# --------------------------------------------------------------------------------------------------


def test_cifar10_reads_python_pickles(tmp_path):
    ref = write_cifar10(tmp_path, per_batch=6)
    bundle = load_data("cifar10", tmp_path, resolution=32)
    assert bundle.num_classes == 10 and bundle.mean == (0.4914, 0.4822, 0.4465)
    assert bundle.train.images.shape == (30, 3, 32, 32) and bundle.val.images.shape == (6, 3, 32, 32)
    # Each 3072-byte row is the R plane, then G, then B of a 32x32 image.
    assert np.array_equal(bundle.train.images[7, 1].numpy().ravel(), ref["train_data"][7, 1024:2048])
    assert np.array_equal(bundle.train.labels.numpy(), ref["train_labels"])
    assert np.array_equal(bundle.val.labels.numpy(), ref["test_labels"])


def test_cifar100_reads_fine_labels(tmp_path):
    ref = write_cifar100(tmp_path, n_train=12, n_test=5)
    # root may also point at the extracted folder itself.
    bundle = load_data("cifar100", tmp_path / "cifar-100-python", resolution=32)
    assert bundle.num_classes == 100 and bundle.std == (0.2673, 0.2564, 0.2762)
    assert bundle.train.images.shape == (12, 3, 32, 32) and bundle.val.images.shape == (5, 3, 32, 32)
    assert np.array_equal(bundle.train.images.reshape(12, -1).numpy(), ref["train"][0])
    assert np.array_equal(bundle.val.labels.numpy(), ref["test"][1])


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_missing_raises_helpful_error(tmp_path, name):
    with pytest.raises(DataError) as info:
        load_data(name, tmp_path, resolution=32)
    message = str(info.value)
    assert str(tmp_path) in message and "download=True" in message and "tar xzf" in message


# --------------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------------


def recipe(name: str, **overrides):
    from omegaconf import OmegaConf

    return OmegaConf.merge(OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "recipe" / f"{name}.yaml"),
                           overrides)


def test_imagefolder_loader_yields_normalised_floats_at_resolution(tmp_path):
    write_imagefolder(tmp_path)
    bundle = load_data("imagefolder", tmp_path, resolution=16, recipe=recipe("modern"))
    assert bundle.num_classes == 3 and bundle.mean == (0.485, 0.456, 0.406)
    assert len(bundle.train) == 12 and len(bundle.val) == 12
    for split in (bundle.train, bundle.val):
        loader = make_loader(split, 5, shuffle=True, workers=0, distributed=False, seed=0, drop_last=False)
        images, labels = next(iter(loader))
        assert images.dtype == torch.float32 and images.shape == (5, 3, 16, 16)
        assert labels.dtype == torch.int64 and set(labels.tolist()) <= {0, 1, 2}
        assert sum(len(b[1]) for b in loader) == 12


def test_imagefolder_training_crop_and_flip_follow_the_recipe(tmp_path):
    """A profile's crop rule reaches folder data too: no random crop means the evaluation's resize and centre crop,
    every epoch the same; the recipe's scale is the loader's scale."""
    write_imagefolder(tmp_path, per_class=2)
    still = load_data("imagefolder", tmp_path, resolution=16, recipe=recipe(
        "original", random_resized_crop=False, hflip=False))
    first, second = (torch.cat([still.train[i][0][None] for i in range(6)]) for _ in range(2))
    assert torch.equal(first, second)
    path = still.train.samples[0][0]
    from torchvision import transforms as T

    from modernize.data.datasets import MEAN_STD
    reference = T.Compose([T.Resize(16), T.CenterCrop(16), T.ToTensor(), T.Normalize(*MEAN_STD["imagefolder"])])
    assert torch.allclose(first[0], reference(Image.open(path).convert("RGB")))
    cropped = load_data("imagefolder", tmp_path, resolution=16, recipe=recipe(
        "original", random_resized_crop_scale=[0.5, 0.9]))
    crop = cropped.train.transform.transforms[0]
    # torchvision's own crop: the original recipe's pipeline (recipe.pipeline: torchvision)
    assert type(crop).__name__ == "RandomResizedCrop" and crop.scale == (0.5, 0.9)
    assert any(type(t).__name__ == "RandomHorizontalFlip" for t in cropped.train.transform.transforms)
    assert not any(type(t).__name__ == "RandomHorizontalFlip" for t in still.train.transform.transforms)


def test_imagefolder_loader_with_worker(tmp_path):
    # Transforms must pickle into worker processes; persistent workers must survive a second epoch.
    write_imagefolder(tmp_path, per_class=2)
    bundle = load_data("imagefolder", tmp_path, resolution=8)
    loader = make_loader(bundle.train, 4, shuffle=False, workers=1, distributed=False, seed=0, drop_last=True)
    assert loader.persistent_workers
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == 1 and batches[0][0].shape == (4, 3, 8, 8)


def test_imagefolder_distributed_sampler(tmp_path):
    write_imagefolder(tmp_path, per_class=2)
    bundle = load_data("imagefolder", tmp_path, resolution=8)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        loader = make_loader(
            bundle.train, 2, shuffle=True, workers=0, distributed=True, seed=3, drop_last=False
        )
        assert isinstance(loader.sampler, torch.utils.data.DistributedSampler)
        assert sorted(loader.sampler) == list(range(6))
    finally:
        dist.destroy_process_group()


def test_imagefolder_subset_is_seeded_subset(tmp_path):
    write_imagefolder(tmp_path, per_class=4)
    a = load_data("imagefolder", tmp_path, resolution=8, train_subset=6, seed=1)
    b = load_data("imagefolder", tmp_path, resolution=8, train_subset=6, seed=1)
    assert isinstance(a.train, torch.utils.data.Subset) and len(a.train) == 6
    assert a.train.indices == b.train.indices
    labels = [a.train.dataset.targets[i] for i in a.train.indices]
    assert sorted(labels) == [0, 0, 1, 1, 2, 2]  # stratified


def test_imagefolder_missing_val_raises(tmp_path):
    write_imagefolder(tmp_path, splits=("train",))
    with pytest.raises(DataError, match="val"):
        load_data("imagefolder", tmp_path, resolution=8)


def test_imagefolder_mismatched_classes_raise(tmp_path):
    write_imagefolder(tmp_path, per_class=1)
    (tmp_path / "val" / "dog").rename(tmp_path / "val" / "wolf")
    with pytest.raises(DataError, match="different class folders"):
        load_data("imagefolder", tmp_path, resolution=8)


# --------------------------------------------------------------------------------------------------
# Synthetic data and subsets
# --------------------------------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_shaped():
    a = load_data("synthetic", None, resolution=16, seed=4, synthetic_size=40, synthetic_classes=5)
    b = load_data("synthetic", None, resolution=16, seed=4, synthetic_size=40, synthetic_classes=5)
    c = load_data("synthetic", None, resolution=16, seed=5, synthetic_size=40, synthetic_classes=5)
    assert a.train.images.shape == (40, 3, 16, 16) and a.val.images.shape == (10, 3, 16, 16)
    assert a.num_classes == 5 and a.mean == (0.5,) * 3
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val.labels, b.val.labels)
    assert not torch.equal(a.train.images, c.train.images)
    assert not torch.equal(a.train.images[:10], a.val.images)  # val is a separate draw
    assert torch.equal(torch.bincount(a.train.labels), torch.full((5,), 8))


def test_synthetic_is_learnable():
    # Nearest class mean fitted on train must beat chance clearly on val.
    bundle = load_data("synthetic", None, resolution=8, seed=0, synthetic_size=400, synthetic_classes=10)
    x_train, y_train = bundle.train.images.flatten(1).float(), bundle.train.labels
    centroids = torch.stack([x_train[y_train == k].mean(0) for k in range(10)])
    pred = torch.cdist(bundle.val.images.flatten(1).float(), centroids).argmin(1)
    assert (pred == bundle.val.labels).float().mean() > 0.5


def test_tensor_subsets_are_seeded_and_stratified():
    kwargs = {
        "resolution": 8,
        "synthetic_size": 200,
        "synthetic_classes": 10,
        "train_subset": 50,
        "val_subset": 20,
    }
    a = load_data("synthetic", None, seed=0, **kwargs)
    b = load_data("synthetic", None, seed=0, **kwargs)
    assert len(a.train) == 50 and len(a.val) == 20
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val.labels, b.val.labels)
    assert torch.equal(torch.bincount(a.train.labels, minlength=10), torch.full((10,), 5))
    assert torch.equal(torch.bincount(a.val.labels, minlength=10), torch.full((10,), 2))
    other = datasets.stratified_indices(torch.arange(200) % 10, 50, seed=1)
    assert not torch.equal(other, datasets.stratified_indices(torch.arange(200) % 10, 50, seed=0))


def test_stratified_indices_follow_class_proportions():
    labels = torch.tensor([0] * 80 + [1] * 20)
    idx = datasets.stratified_indices(labels, 10, seed=0)
    assert len(set(idx.tolist())) == 10
    assert torch.equal(torch.bincount(labels[idx]), torch.tensor([8, 2]))


def test_tensor_dataset_to_and_validation():
    ds = TensorDataset(torch.zeros(3, 3, 4, 4, dtype=torch.uint8), torch.arange(3))
    moved = ds.to("cpu")
    assert len(moved) == 3 and moved.images.dtype == torch.uint8
    with pytest.raises(ValueError):
        TensorDataset(torch.zeros(3, 1, 4, 4, dtype=torch.uint8), torch.arange(3))


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        load_data("mnist", None, resolution=32)
    for name in ("fashion_mnist", "cifar10", "cifar100", "imagefolder", "synthetic"):
        assert name in str(info.value)


def test_an_in_memory_data_set_keeps_its_own_resolution_at_any_profile_resolution(tmp_path):
    """Fashion-MNIST at profile=imagenet's 224 px (or any size) is held at 28 px: each batch is resized on the device,
    so the copy in memory never grows with the resolution (a 224-px copy of the 70k images would be 10.5 GB)."""
    write_fashion_mnist(tmp_path, 20, 8, gz=False)
    for resolution in (32, 224, 100_000):
        bundle = load_data("fashion_mnist", tmp_path, resolution=resolution, download=False)
        assert bundle.train.images.shape[1:] == (3, 28, 28) and bundle.val.images.shape[1:] == (3, 28, 28)
