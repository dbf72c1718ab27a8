"""Batch sources: the one interface the training loop reads data through, whatever kind of data set it is.

Two kinds exist (see modernize.datasets): small data sets held whole on the device as uint8 tensors, sliced into
batches there, and folder data sets read by DataLoader workers that also run the recipe's per-image pipeline. Both
give this process's shard of each epoch as `(images, labels)` on the device (uint8 from memory, normalised floats
from the workers), start mid-epoch for a resumed run, and say whether the loader workers already augmented and
normalised them (`loader_transforms`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler

from ..data import datasets
from .runtime import Processes, RunError

Batch = tuple[torch.Tensor, torch.Tensor]


class InMemoryBatches:
    """A data set held whole on the device: each epoch is DistributedSampler's seeded permutation (every
    process its own shard), sliced into batches by indexing; no workers, no host-to-device copies."""

    loader_transforms = False  # the batched augmentation on the device augments these

    def __init__(self, train: datasets.TensorDataset | None, val: datasets.TensorDataset, device: torch.device,
                 local_batch: int, processes: Processes, seed: int):
        if train is not None:
            datasets.check_fits_on_device(train, device)
        self.train_set, self.val_set = (train.to(device) if train is not None else None), val.to(device)
        self.local_batch, self.processes = local_batch, processes
        train_size = len(train) if train is not None else 0  # no train split: validation batches only
        self.steps_per_epoch = train_size // (local_batch * processes.count)
        self.sampler = DistributedSampler(range(train_size), num_replicas=processes.count, rank=processes.rank,
                                          shuffle=True, seed=seed, drop_last=True)

    def train_batches(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        self.sampler.set_epoch(epoch)  # a new seeded order each epoch
        order = torch.tensor(list(self.sampler), device=self.train_set.images.device)
        b = self.local_batch
        for i in range(start_step, self.steps_per_epoch):
            index = order[i * b:(i + 1) * b]
            yield self.train_set.images[index], self.train_set.labels[index]

    def close(self) -> None:
        """Nothing to stop: no workers."""

    def val_batches(self) -> Iterator[Batch]:
        b, p = self.local_batch, self.processes
        for i in range(p.rank * b, len(self.val_set), b * p.count):
            yield self.val_set.images[i:i + b], self.val_set.labels[i:i + b]


class LoaderBatches:
    """A folder data set read by DataLoader workers, which decode and run the recipe's per-image pipeline
    (modernize.data.augment.folder_transforms) to normalised floats; batches are moved to the device here."""

    loader_transforms = True

    def __init__(self, data: datasets.DataBundle, device: torch.device, local_batch: int, processes: Processes,
                 seed: int, workers: int):
        self.device = device
        self.train_loader = None if data.train is None else datasets.make_loader(
            data.train, local_batch, shuffle=True, workers=workers, distributed=processes.distributed, seed=seed,
            drop_last=True, rank=processes.rank)  # None: validation batches only
        self.val_loader = datasets.make_loader(data.val, local_batch, shuffle=False, workers=workers,
                                               distributed=processes.distributed, seed=seed, drop_last=False,
                                               rank=processes.rank)
        self.steps_per_epoch = len(self.train_loader) if self.train_loader is not None else 0

    def _on_device(self, batches) -> Iterator[Batch]:
        try:
            for images, labels in batches:
                yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        except datasets.DataError as e:  # a bad image, raised in a worker: the line naming it, not the traceback
            raise datasets.worker_error(e) from None

    def train_batches(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        if isinstance(self.train_loader.sampler, DistributedSampler):
            self.train_loader.sampler.set_epoch(epoch)  # else every epoch repeats one order
        batches = iter(self.train_loader)
        try:
            for _ in range(start_step):  # a mid-epoch resume skips what the checkpoint already saw
                next(batches)
        except datasets.DataError as e:
            raise datasets.worker_error(e) from None
        return self._on_device(batches)

    def val_batches(self) -> Iterator[Batch]:
        return self._on_device(self.val_loader)

    def close(self) -> None:
        """Stop the persistent workers now. Left to the garbage collector, a DataLoader whose worker raised (a bad
        image) takes ~20 s to shut down at some later moment: in a multirun that is the next run's time."""
        for loader in (self.train_loader, self.val_loader):
            if loader is None:
                continue
            workers = getattr(loader, "_iterator", None)  # persistent_workers keeps one iterator (private API)
            if workers is not None and hasattr(workers, "_shutdown_workers"):
                workers._shutdown_workers()
            loader._iterator = None


def batch_source(data: datasets.DataBundle, device: torch.device, local_batch: int, processes: Processes,
                 seed: int, workers: int) -> InMemoryBatches | LoaderBatches:
    """In memory when the data set was loaded as tensors, else a DataLoader (a bundle without a train split gives
    validation batches only: task=eval)."""
    if isinstance(data.val, datasets.TensorDataset):
        return InMemoryBatches(data.train, data.val, device, local_batch, processes, seed)
    return LoaderBatches(data, device, local_batch, processes, seed, workers)


def make_batches(data: datasets.DataBundle, device: torch.device, global_batch: int, processes: Processes,
                 seed: int, workers: int) -> InMemoryBatches | LoaderBatches:
    """The batch source for a data set: in memory when it was loaded as tensors, else a DataLoader. Each process
    gets global_batch / processes images per optimizer step (engine.TrainStep splits them into the run's
    micro-batches: modernize.training.batch_plan checked that they divide it)."""
    source = batch_source(data, device, global_batch // processes.count, processes, seed, workers)
    if source.steps_per_epoch == 0:
        raise RunError(f"the training set ({len(data.train)} images) is smaller than one global batch "
                       f"({global_batch})")
    return source
