"""How a profile scales the paper's run to its budget: the proxy's rules, each in one place.

A profile (conf/profile/*.yaml) shrinks width, resolution, data and epochs. Shrinking the run without
scaling what was tuned for the paper's budget makes a proxy that measures the wrong thing (a 300-epoch
regularization recipe on a 20-epoch run; a 1e-6 layer scale that cannot grow in 7k steps; ImageNet crops on
28-px garments). Each rule below is chosen per profile by a name, applied to every roadmap step the same way
(never per step), and written into summary.json and the table's header. docs/proxy.md records how the rules
were chosen, on the endpoints and the recipe step only.
"""

from __future__ import annotations


from dataclasses import replace
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..design.config import model_spec
from ..data.datasets import MEAN_STD, is_folder
from ..design.preprocessing import Preprocessing, preprocessing_of
from ..design.peers import PeerSpec
from ..design.spec import ModelSpec

# The paper's longest schedule (Table 5: the modern recipe, 300 epochs) and its input size.
PAPER_EPOCHS = 300
PAPER_RESOLUTION = 224

# Each rule: its allowed values, the first being what a profile that does not name it gets.
RULES = {
    "epoch_rule": ("fixed", "recipe_ratio"),
    "regularization_rule": ("paper", "budget"),
    "layer_scale_rule": ("paper", "cait"),
    "crop_rule": ("paper", "pixels"),
    "ema_rule": ("paper", "horizon", "disabled"),
}

# The paper's run in optimizer steps: 300 epochs of ImageNet-1K's 1,281,167 images at batch 4096, drop_last
# (official main.py: num_training_steps_per_epoch = len(dataset_train) // total_batch_size = 312).
PAPER_STEPS = 300 * (1_281_167 // 4096)


def rule(profile: DictConfig, name: str) -> str:
    return str(OmegaConf.select(profile, name, default=RULES[name][0]))


def run_epochs(profile: DictConfig, recipe: DictConfig) -> int:
    """Epochs this recipe trains under the profile.

    "fixed": every recipe trains `profile.epochs`. "recipe_ratio": `profile.epochs` is what the paper's
    300-epoch recipe gets, and every recipe keeps its epochs relative to it, as in the paper (section 2.1:
    the modern recipe's 300 epochs against ResNet-50's 90), so the "recipe" step keeps its longer schedule.
    """
    if profile.epochs is None:
        return int(recipe.epochs)
    if rule(profile, "epoch_rule") == "recipe_ratio":
        return max(1, round(profile.epochs * recipe.epochs / PAPER_EPOCHS))
    return int(profile.epochs)


def budget_fraction(epochs: int, recipe: DictConfig) -> float:
    """How much of the recipe's own schedule the run trains (1.0 at the paper's budget)."""
    return min(1.0, epochs / recipe.epochs)


def scale_regularization(recipe: dict[str, Any], fraction: float) -> dict[str, Any]:
    """The "budget" rule: every regularizer that the paper tuned for 300 epochs shrinks in proportion to the
    budget: Mixup and CutMix alpha, RandAugment magnitude (and its std), random-erasing probability, drop path.

    Anchor: "ResNet strikes back" (Wightman et al. 2021) trains one ResNet-50 at three budgets and regularizes
    less the shorter the run: A3 (100 epochs, a third of 300) uses Mixup 0.1, RandAugment m6, no drop path and
    no erasing, against ConvNeXt's 0.8 / m9 / 0.1 / 0.25 at 300 epochs; proportional scaling gives the same
    order at a third of the budget (0.27 / m3 / 0.03 / 0.08). Augmentations mix or distort images, so at a few
    epochs they cost more fit than they buy generalization. RandAugment is dropped where its scaled magnitude
    rounds to 0: at magnitude 0 only its magnitude-free ops (equalize, autocontrast) would remain, which are not
    weaker at shorter budgets. Label smoothing and weight decay stay: they cost no samples.
    """
    scaled = dict(recipe)
    scaled["mixup"] = recipe["mixup"] * fraction
    scaled["cutmix"] = recipe["cutmix"] * fraction
    scaled["random_erasing"] = recipe["random_erasing"] * fraction
    if recipe["randaugment"]:
        magnitude, std = recipe["randaugment"]
        scaled["randaugment"] = [magnitude * fraction, std * fraction] if magnitude * fraction >= 0.5 else None
    return scaled


def crop_scale(scale: tuple[float, float], resolution: int) -> tuple[float, float] | None:
    """The "pixels" rule: the smallest random-resized crop keeps the paper's pixel count.

    At 224 px the paper's smallest crop (8% of the area) still holds ~4,000 pixels (63x63), an object's worth;
    8% of a 32-px image is a 9x9 patch of a garment. Keeping the pixel count gives a lower scale of
    0.08 * (224 / resolution)^2: 0.98 at 64 px, over 1 at 32 px, where the crop is switched off (None).
    """
    low = scale[0] * (PAPER_RESOLUTION / resolution) ** 2
    if low >= 1.0:
        return None
    return (low, scale[1])


def cait_layer_scale(blocks: int) -> float:
    """CaiT's rule (Touvron et al. 2021, section 3): the initial layer-scale value set by depth: 0.1 up to 18
    blocks, 1e-5 up to 24, 1e-6 deeper.

    The paper's 1e-6 is for 300 ImageNet epochs (~94k AdamW steps): Adam moves a parameter by about the learning
    rate per step, so the sum of the learning rate over the run bounds how far the scale can grow. A proxy's few
    thousand steps at a sqrt-scaled lr sum to a few units, so a 1e-6 branch stays switched off for much of the
    run; CaiT's depth rule is the published alternative that does not depend on the schedule.
    """
    if blocks <= 18:
        return 0.1
    return 1e-5 if blocks <= 24 else 1e-6


def ema_decay(profile: DictConfig, recipe_decay: float | None, run_steps: int) -> float | None:
    """The EMA decay this profile trains with (None: no EMA), given the run's optimizer steps.

    "paper": the recipe's decay as it is (0.9999 for the modern recipe, official TRAINING.md). An EMA of decay d
    averages over about 1 / (1 - d) steps: 10k for 0.9999, a ninth of the paper's 93.6k steps, but more than a
    6-epoch run of 60k images at batch 128 has (2.8k steps), whose EMA would still be mostly the random init.
    "horizon": the decay that averages over the same share of this run as the recipe's does of the paper's, i.e.
    1 - (1 - d) * PAPER_STEPS / run_steps (0.9996 for the gpu profile's 23k steps); None if the run is shorter
    than the horizon's share allows (the decay would be <= 0). "disabled": no EMA (the cpu profile: its rules were
    frozen before EMA was part of the recipe, and its tables compare the model's own top-1).
    """
    name = rule(profile, "ema_rule")
    if recipe_decay is None or name == "disabled":
        return None
    if name == "paper":
        return float(recipe_decay)
    scaled = 1.0 - (1.0 - recipe_decay) * PAPER_STEPS / max(run_steps, 1)
    return scaled if scaled > 0 else None


def effective_recipe(cfg: DictConfig) -> tuple[int, dict[str, Any]]:
    """(epochs, recipe as trained): the recipe after the profile's epoch, regularization and crop rules."""
    profile, recipe = cfg.profile, cfg.recipe
    epochs = run_epochs(profile, recipe)
    scaled = OmegaConf.to_container(recipe, resolve=True)
    if rule(profile, "regularization_rule") == "budget":
        scaled = scale_regularization(scaled, budget_fraction(epochs, recipe))
    if rule(profile, "crop_rule") == "pixels" and scaled["random_resized_crop"]:
        scale = crop_scale(tuple(scaled["random_resized_crop_scale"]), int(profile.resolution))
        scaled["random_resized_crop"] = scale is not None
        if scale is not None:
            scaled["random_resized_crop_scale"] = list(scale)
    return epochs, scaled


def scale_model(spec: ModelSpec | PeerSpec, cfg: DictConfig, num_classes: int) -> ModelSpec | PeerSpec:
    """The architecture as trained under the profile: the same design at the profile's width, for the data's
    classes, with the profile's stem stride, layer-scale and drop-path rules (a transformer: scale_peer). The
    paper's model (params and GFLOPs at 224) is never touched by any of these."""
    if isinstance(spec, PeerSpec):
        return scale_peer(spec, cfg, num_classes)
    profile = cfg.profile
    epochs = run_epochs(profile, cfg.recipe)
    divisor = int(OmegaConf.select(profile, "stem_stride_divisor", default=1) or 1)
    block = spec.block
    if rule(profile, "layer_scale_rule") == "cait" and block.layer_scale_init > 0:
        block = replace(block, layer_scale_init=cait_layer_scale(sum(spec.depths)))
    drop_path = spec.drop_path_rate
    if rule(profile, "regularization_rule") == "budget":
        drop_path = spec.drop_path_rate * budget_fraction(epochs, cfg.recipe)
    scaled = replace(spec, width_multiplier=float(profile.width_multiplier), num_classes=num_classes, block=block,
                     stem=replace(spec.stem, stride_divisor=divisor), drop_path_rate=drop_path)
    scaled.validate()
    return scaled


# The rules that scale a transformer of the paper's tables (modernize.design.peers), written into its summary.json.
PEER_RULES = {
    # At x1/4, Swin-T's 96 channels become 24: a 32-wide head (Swin's) would leave less than one head per stage, so
    # the heads stay and each narrows with the width, as a ConvNeXt's depthwise conv keeps one group per channel at
    # any width. The head's width is rounded as ConvNeXt's widths are (a multiple of 8, at least 8): Swin-T's 32 ->
    # 8 and DeiT-S's 64 -> 16 at x1/4, so Swin-T's stages are ConvNeXt-T's 24/48/96/192.
    "peer_width_rule": "heads kept: head dim x width multiplier (a multiple of 8, at least 8) x heads",
    # Patches as the ConvNeXt it is set beside: Swin's 4x4 as ConvNeXt-T's patchify stem, ViT's 16x16 as isotropic
    # ConvNeXt's, each divided by the profile's stem_stride_divisor, so the two see the same token grid.
    "peer_patch_rule": "the paper's patch / stem_stride_divisor, as the ConvNeXt stem beside it",
    # A 7x7 window tiles 224 px's 56x56 tokens, not 32 px's 8x8: the window is the largest one, no larger than the
    # paper's, that divides (or covers) every stage's grid: 4 at 32 and 64 px, 7 at 224. Windows stay local (a 2x2
    # grid of them at stage 1, shifted by 2) rather than one global window.
    "peer_window_rule": "the largest window <= the paper's that tiles every stage's token grid",
    "peer_layer_scale": "none (Swin and DeiT have none)",
}


def scale_peer(spec: PeerSpec, cfg: DictConfig, num_classes: int) -> PeerSpec:
    """A transformer as the profile trains it (PEER_RULES): width with its heads kept, the profile's resolution with
    the ConvNeXt stem's patch rule and the largest window that tiles, drop path by the profile's regularization rule
    (as a ConvNeXt's). A size the patches cannot tile is refused by PeerSpec.validate, naming the sizes."""
    profile = cfg.profile
    divisor = int(OmegaConf.select(profile, "stem_stride_divisor", default=1) or 1)
    multiplier, heads = float(profile.width_multiplier), spec.num_heads[0]
    head_dim = spec.embed_dim // heads
    if multiplier != 1.0:
        head_dim = max(8, int(round(head_dim * multiplier / 8)) * 8)
    drop_path = spec.drop_path_rate
    if rule(profile, "regularization_rule") == "budget":
        drop_path = spec.drop_path_rate * budget_fraction(run_epochs(profile, cfg.recipe), cfg.recipe)
    scaled = replace(spec, embed_dim=head_dim * heads, img_size=int(profile.resolution),
                     patch_size=spec.patch_size // divisor,
                     drop_path_rate=drop_path, num_classes=num_classes, width_multiplier=multiplier)
    if spec.window_size:
        scaled = replace(scaled, window_size=tiling_window(scaled, spec.window_size))
    scaled.validate()
    return scaled


def tiling_window(spec: PeerSpec, largest: int) -> int:
    """The largest window no larger than `largest` that divides or covers each stage's token grid."""
    return next(w for w in range(largest, 0, -1) if all(g <= w or g % w == 0 for g in spec.stage_grids()))


def run_spec(cfg: DictConfig, num_classes: int) -> ModelSpec | PeerSpec:
    """The architecture a run of `cfg` trains: its model (config.model_spec) as the profile scales it (scale_model)."""
    return scale_model(model_spec(cfg), cfg, num_classes)


def run_preprocessing(cfg: DictConfig) -> Preprocessing:
    """What a run's model expects of an image: its data set's statistics at the profile's resolution, through the
    evaluation transform training scores it with (modernize.design.preprocessing)."""
    name = str(cfg.data.name)
    return preprocessing_of(int(cfg.profile.resolution), MEAN_STD[name], folder=is_folder(name),
                            interpolation=str(cfg.recipe.interpolation))


def check_rules(profile: DictConfig) -> None:
    """Unknown rule names, raised before any work starts."""
    for name, allowed in RULES.items():
        value = rule(profile, name)
        if value not in allowed:
            raise ValueError(f"profile.{name} must be one of {', '.join(allowed)}; got {value!r}")


def describe(cfg: DictConfig, spec: ModelSpec | PeerSpec) -> dict[str, Any]:
    """What the profile changed, for summary.json and the table's header (a transformer's: its rules, the timm model
    and timm's version too)."""
    profile = cfg.profile
    epochs, recipe = effective_recipe(cfg)
    peer = isinstance(spec, PeerSpec)
    described = {
        "width_multiplier": profile.width_multiplier, "resolution": profile.resolution,
        "train_subset": profile.train_subset, "val_subset": profile.val_subset, "epochs": epochs,
        "lr_scaling": profile.lr_scaling, "stem_stride": spec.patch_size if peer else spec.stem.stride,
        "epoch_rule": rule(profile, "epoch_rule"),
        "regularization_rule": rule(profile, "regularization_rule"),
        "layer_scale_rule": rule(profile, "layer_scale_rule"), "crop_rule": rule(profile, "crop_rule"),
        "ema_rule": rule(profile, "ema_rule"),
        "layer_scale_init": None if peer else spec.block.layer_scale_init,
        "drop_path_rate": round(spec.drop_path_rate, 6),
        "mixup": round(recipe["mixup"], 6), "cutmix": round(recipe["cutmix"], 6),
        "randaugment": [round(v, 4) for v in recipe["randaugment"]] if recipe["randaugment"] else None,
        "random_erasing": round(recipe["random_erasing"], 6),
        "random_resized_crop": recipe["random_resized_crop"] and [round(v, 4) for v in
                                                                  recipe["random_resized_crop_scale"]],
    }
    if peer:
        import timm

        described |= {**PEER_RULES, "timm_model": spec.timm, "timm_version": timm.__version__,
                      "embed_dim": spec.embed_dim, "num_heads": list(spec.num_heads),
                      "head_dim": spec.embed_dim // spec.num_heads[0], "window_size": spec.window_size}
    return described


def is_folder_data(cfg: DictConfig) -> bool:
    return is_folder(OmegaConf.select(cfg, "data.name", default=""))
