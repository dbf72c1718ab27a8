"""One parametric network: ResNet-50, ConvNeXt-T and every model between them are `build(spec)`.

The module tree is small on purpose (stem, stages of blocks, head) and names each layer by its role, so a
printed model reads like the paper's figure 4 and `modernize.design.weights` can map published checkpoints onto it.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from .peers import PeerSpec, build_peer
from .spec import BlockSpec, ModelSpec


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dim of an NCHW tensor (the official ConvNeXt's "channels_first" LN), or of an NHWC
    one inside a block (`channels_last`, see `Block`).

    Permuting to NHWC and calling the fused `F.layer_norm` is what timm does and is faster than computing
    mean/var by hand.
    """

    def __init__(self, channels: int, eps: float = 1e-6, channels_last: bool = False):
        super().__init__(channels, eps=eps)
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class PointwiseConv(nn.Conv2d):
    """A 1x1 conv run on an NHWC tensor as a Linear over the channels (one GEMM with the bias fused: timm's and the
    official ConvNeXt's `pwconv`). Its parameters are the Conv2d's, so the state dict, the FLOP count and every
    checkpoint mapping are those of the NCHW module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight.flatten(1), self.bias)


def make_norm(kind: str, channels: int, *, spatial: bool = True, channels_last: bool = False) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels) if spatial else nn.BatchNorm1d(channels)
    # eps 1e-6 as in the official ConvNeXt
    return LayerNorm2d(channels, eps=1e-6, channels_last=channels_last) if spatial else nn.LayerNorm(channels, eps=1e-6)


def make_activation(kind: str) -> nn.Module:
    return {"relu": lambda: nn.ReLU(inplace=True), "gelu": nn.GELU, "silu": lambda: nn.SiLU(inplace=True)}[kind]()


def conv(in_ch: int, out_ch: int, kernel: int, *, stride: int = 1, groups: int = 1, padding: int | None = None,
         followed_by_batch_norm: bool, channels_last: bool = False) -> nn.Conv2d:
    # A conv directly followed by BatchNorm carries no bias: BN's shift makes it redundant (torchvision's
    # ResNet). LayerNorm normalizes across channels and does not absorb a per-channel bias, so the official
    # ConvNeXt keeps biases everywhere; this one rule reproduces both parameter counts exactly.
    kind = PointwiseConv if channels_last else nn.Conv2d  # channels_last: a 1x1 conv on a block's NHWC tensor
    return kind(in_ch, out_ch, kernel, stride=stride, groups=groups,
                padding=kernel // 2 if padding is None else padding, bias=not followed_by_batch_norm)


class LayerScale(nn.Module):
    """Per-channel scale of a block's NHWC residual branch (Touvron et al. 2021)."""

    def __init__(self, channels: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """A residual bottleneck: x -> act_post(shortcut(x) + drop_path(layer_scale(branch(x))))."""

    def __init__(self, spec: BlockSpec, in_dim: int, width: int, *, stride: int, drop_path: float):
        super().__init__()
        out_dim, hidden = spec.residual_width(width), spec.hidden_width(width)
        bn = spec.norm == "batch"
        if spec.spatial_position == "middle":  # ResNet: 1x1 reduce, k x k, 1x1 restore
            plan = [("pw1", in_dim, hidden, 1), ("spatial", hidden, hidden, spec.kernel_size),
                    ("pw2", hidden, out_dim, 1)]
        else:  # section 2.5 "moving up depthwise conv layer": k x k first, as the MSA block precedes the MLP
            plan = [("spatial", in_dim, in_dim, spec.kernel_size), ("pw1", in_dim, hidden, 1),
                    ("pw2", hidden, out_dim, 1)]
        # How the block computes, not what it computes: every layer after the spatial conv acts on each pixel alone
        # (1x1 convs, norms, activations, layer scale, stochastic depth), so they run on the tensor permuted to NHWC,
        # which is free for the channels-last tensors every profile trains with (`train.channels_last`). The 1x1 convs
        # are then plain GEMMs (PointwiseConv) and LayerNorm needs no permute, as in timm's and the official ConvNeXt
        # block; with oneDNN's 1x1 convs on small maps our ConvNeXt-T stepped at 0.86x of timm's on a CPU. Measured
        # by `make bench` (sections 1 and 2). Each such layer is built for NHWC, so the block stays scriptable.
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        nhwc = False  # whether the layers being added come after the spatial conv
        for role, c_in, c_out, k in plan:
            spatial = role == "spatial"
            has_norm = role in spec.norm_after
            layers[role] = conv(c_in, c_out, k, stride=stride if spatial else 1,
                                groups=spec.spatial_groups(c_in) if spatial else 1,
                                followed_by_batch_norm=has_norm and bn, channels_last=nhwc)
            nhwc = nhwc or spatial
            if has_norm:
                layers[f"{role}_norm"] = make_norm(spec.norm, c_out, channels_last=nhwc)
            if role in spec.act_after:
                layers[f"{role}_act"] = make_activation(spec.activation)
        self.branch = nn.Sequential(layers)
        self.per_pixel_from = list(layers).index("spatial") + 1
        # BatchNorm on NHWC: every pixel is a sample of its statistics, whatever the layout, so (N*H*W, C, 1, 1) is the
        # same batch; the block reshapes for it (BatchNorm2d's own forward cannot be extended in TorchScript)
        self.pixels_as_batch = [i >= self.per_pixel_from and isinstance(layer, nn.BatchNorm2d)
                                for i, layer in enumerate(layers.values())]
        if stride != 1 or in_dim != out_dim:  # projection shortcut (ResNet option B)
            self.shortcut = nn.Sequential(OrderedDict(
                conv=conv(in_dim, out_dim, 1, stride=stride, followed_by_batch_norm=bn),
                norm=make_norm(spec.norm, out_dim)))
        else:
            self.shortcut = nn.Identity()
        self.layer_scale = LayerScale(out_dim, spec.layer_scale_init) if spec.layer_scale_init > 0 else nn.Identity()
        self.drop_path = StochasticDepth(drop_path, mode="row") if drop_path > 0 else nn.Identity()
        self.post_act = make_activation(spec.activation) if spec.act_after_residual else nn.Identity()
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for i, layer in enumerate(self.branch):
            if i == self.per_pixel_from:
                y = y.permute(0, 2, 3, 1)  # NCHW -> NHWC: a view of a channels-last tensor, no copy
            if self.pixels_as_batch[i]:
                y = layer(y.reshape(-1, y.shape[-1], 1, 1)).view(y.shape)
            else:
                y = layer(y)
        y = self.drop_path(self.layer_scale(y)).permute(0, 3, 1, 2)  # back to NCHW, channels-last
        return self.post_act(self.shortcut(x) + y)


class Stage(nn.Module):
    def __init__(self, downsample: nn.Module, blocks: list[Block]):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


def build_stem(spec: ModelSpec, out_dim: int) -> nn.Sequential:
    norm_kind = spec.block.norm
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    divisor = spec.stem.stride_divisor
    if spec.stem.kind == "resnet":
        # 7x7/2 conv + 3x3/2 max-pool (stride 4); a stride divisor drops the pool first, then the conv's stride
        layers["conv"] = conv(spec.in_chans, out_dim, 7, stride=2 if divisor < 4 else 1, padding=3,
                              followed_by_batch_norm=spec.stem.norm and norm_kind == "batch")
        if spec.stem.norm:
            layers["norm"] = make_norm(norm_kind, out_dim)
        layers["act"] = make_activation(spec.block.activation)
        if divisor == 1:
            layers["pool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    else:
        # Section 2.3: a non-overlapping p x p, stride p conv, like the patch embedding of ViT/Swin, which
        # has a norm and no activation.
        p = spec.stem.patch_size // divisor
        layers["conv"] = conv(spec.in_chans, out_dim, p, stride=p, padding=0,
                              followed_by_batch_norm=spec.stem.norm and norm_kind == "batch")
        if spec.stem.norm:
            layers["norm"] = make_norm(norm_kind, out_dim)
    return nn.Sequential(layers)


class Head(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, norm: str | None):
        super().__init__()
        self.norm = make_norm(norm, in_dim, spatial=False) if norm else nn.Identity()
        self.fc = nn.Linear(in_dim, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = self.norm(x.mean(dim=(2, 3)))
        return pooled if pre_logits else self.fc(pooled)


class Network(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        spec.validate()
        self.spec = spec
        widths = spec.scaled_widths()
        dim = spec.stem_width()
        self.stem = build_stem(spec, dim)
        total = sum(spec.depths)
        # Stochastic depth rate grows linearly with block index (Huang et al. 2016; the official ConvNeXt).
        rates = [spec.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, index = [], 0
        for i, (width, depth) in enumerate(zip(widths, spec.depths)):
            downsample: nn.Module = nn.Identity()
            stride = 1
            if i > 0 and spec.downsampling == "separate":
                out_dim = spec.block.residual_width(width)
                # Section 2.6: "adding normalization layers wherever spatial resolution is changed"
                downsample = nn.Sequential(OrderedDict(
                    norm=make_norm(spec.block.norm, dim),
                    conv=conv(dim, out_dim, 2, stride=2, padding=0, followed_by_batch_norm=False)))
                dim = out_dim
            elif i > 0:
                stride = 2
            blocks = []
            for j in range(depth):
                block = Block(spec.block, dim, width, stride=stride if j == 0 else 1, drop_path=rates[index])
                blocks.append(block)
                dim = block.out_dim
                index += 1
            stages.append(Stage(downsample, blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = self.head_hidden_size = dim  # no pre-logits layer: the pooled features feed the classifier
        self.num_classes = spec.num_classes
        self.grad_checkpointing = False
        self.head = Head(dim, spec.num_classes, spec.block.norm if spec.head_norm else None)
        # timm's model interface (features_only, detection necks): each stage's channels and total stride; the
        # first stage keeps the stem's stride (4 at both of the paper's stems), each later one halves the map
        self.feature_info = [
            {"num_chs": stage.blocks[-1].out_dim, "reduction": spec.reduction(i), "module": f"stages.{i}"}
            for i, stage in enumerate(self.stages)]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if self.spec.init.startswith("kaiming"):
                    # torchvision's ResNet: He-normal fan-out for convs, PyTorch's default for the classifier
                    if isinstance(m, nn.Conv2d):
                        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                        if m.bias is not None:
                            nn.init.zeros_(m.bias)
                else:
                    # DeiT / Swin / ConvNeXt: truncated normal, std 0.02, zero bias
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.spec.init == "kaiming_zero_last":
            for block in self.modules():
                # timm's bn3; a block without a norm after its last conv (ConvNeXt's) has nothing to zero
                if isinstance(block, Block) and hasattr(block.branch, "pw2_norm"):
                    nn.init.zeros_(block.branch.pw2_norm.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            for stage in self.stages:  # keep each block's input only; recompute its activations in backward
                x = stage.downsample(x)
                for block in stage.blocks:
                    x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            return x
        return self.stages(x)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's interface: recompute each block's activations in the backward pass instead of keeping them."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's interface (layer-wise lr decay, freezing): the stem, then each stage (or each block)."""
        return {"stem": r"^stem", "blocks": r"^stages\.(\d+)" if coarse else
                [(r"^stages\.(\d+)\.downsample", (0,)), (r"^stages\.(\d+)\.blocks\.(\d+)", None)]}

    @torch.jit.ignore
    def forward_intermediates(self, x: torch.Tensor, indices: int | list[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False):
        """timm's interface: the outputs of the stages `indices` selects (an int n: the last n; None: all), in NCHW,
        and the final features (unless `intermediates_only`). `norm` is accepted for timm's signature: these models
        have no norm between the last stage and the head's pooling."""
        from timm.models._features import feature_take_indices

        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW' (the stages' layout), got {output_fmt!r}")
        take, last = feature_take_indices(len(self.stages), indices)
        intermediates = []
        x = self.stem(x)
        stages = self.stages[:last + 1] if stop_early or intermediates_only else self.stages
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: int | list[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """timm's interface: drop the stages after the last one `indices` selects (and the classifier)."""
        from timm.models._features import feature_take_indices

        take, last = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[:last + 1]
        self.feature_info = self.feature_info[:last + 1]
        if prune_head:
            self.reset_classifier(0)
        return take

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """timm's interface: pooled (and, after the separate-downsampling step, normalised) features with
        `pre_logits`, else the logits."""
        return self.head(x, pre_logits)

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier for `num_classes` (0: none, the pooled features come out); timm's interface. Global
        average pooling is the only pooling the paper's models use, so `global_pool` must be None or 'avg'."""
        if global_pool not in (None, "avg"):
            raise ValueError(f"global_pool must be 'avg' (the only pooling of these models), got {global_pool!r}")
        self.num_classes = num_classes
        self.head.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def build(spec: ModelSpec | PeerSpec) -> nn.Module:
    """The model of a spec: our Network, or for a peer of the paper's tables timm's own model."""
    if isinstance(spec, PeerSpec):
        return build_peer(spec)
    return Network(spec)
