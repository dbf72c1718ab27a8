"""A training recipe (conf/recipe/*.yaml) as torch objects: parameter groups, optimizer, lr schedule, mixing."""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig
from torch import nn
from torchvision.transforms import v2


def scaled_lr(lr: float, batch: int, reference_batch: int, rule: str) -> float:
    """The recipe's lr at another global batch.

    "linear" is the paper's rule (appendix A.1, after Goyal et al. 2017) and right near the recipe's batch.
    Small-batch proxies use "sqrt", the scaling rule for adaptive optimizers (Malladi et al., NeurIPS 2022):
    linear scaling takes AdamW from 4e-3 at 4096 down to 1.25e-4 at 128, too small to learn anything in a few
    epochs, while sqrt gives 7e-4; for SGD at 128 it gives 0.07 instead of 0.05.
    """
    ratio = batch / reference_batch
    return lr * (ratio if rule == "linear" else math.sqrt(ratio))


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict]:
    """No weight decay on 1-D tensors (norm weights, biases, layer scale), as the official ConvNeXt code."""
    if decay_norm_and_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, recipe: DictConfig, lr: float, device: torch.device) -> torch.optim.Optimizer:
    groups = param_groups(model, recipe.weight_decay, recipe.decay_norm_and_bias)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    fused = device.type == "cuda"  # fused AdamW is the fastest on CUDA; foreach elsewhere
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(recipe.betas), fused=fused, foreach=None if fused else True)


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: DictConfig, epochs: int, steps_per_epoch: int):
    """Per-step schedule; warmup and milestones keep their fraction of the recipe's epochs (shape of the run)."""
    total = epochs * steps_per_epoch
    if recipe.schedule == "step":
        milestones = [round(m / recipe.epochs * total) for m in recipe.milestones]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=recipe.gamma)
    warmup = round(recipe.warmup_epochs / recipe.epochs * total)
    base_lr = optimizer.param_groups[0]["lr"]
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total - warmup, 1),
                                                        eta_min=min(recipe.min_lr, base_lr))
    if warmup == 0:
        return cosine
    linear = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1e-3, end_factor=1.0, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [linear, cosine], milestones=[warmup])


def make_mixing(recipe: DictConfig, num_classes: int) -> nn.Module | None:
    """Mixup and CutMix (one of the two per batch, as timm's switch_prob 0.5), torchvision v2."""
    ops = []
    if recipe.mixup > 0:
        ops.append(v2.MixUp(alpha=recipe.mixup, num_classes=num_classes))
    if recipe.cutmix > 0:
        ops.append(v2.CutMix(alpha=recipe.cutmix, num_classes=num_classes))
    if not ops:
        return None
    return ops[0] if len(ops) == 1 else v2.RandomChoice(ops)
