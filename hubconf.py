"""torch.hub entry points: every model of the ConvNeXt roadmap (Figure 2), the kernel sizes of its kernel sweep, and
the ConvNeXt family (T/S/B/L/XL).

    model = torch.hub.load("<this checkout>", "inverted_bottleneck", source="local")
    model = torch.hub.load("<this checkout>", "convnext_t", source="local", weights="convnext_tiny_1k_224_ema.pth")
    model = torch.hub.load("<this checkout>", "gelu", source="local", num_classes=10, drop_path_rate=0.1)

Each entry builds the paper's full-width model, as `modernize.build_model` does; keyword arguments set fields of its
spec (num_classes, drop_path_rate, in_chans, ...: modernize.design.spec.ModelSpec). `weights=` reads a file of ours
(a run's last.pt or weights.pt, its EMA's weights when it holds them) or an official / timm / torchvision state dict,
converted as task=eval converts it (modernize/design/weights.py); a file that is missing, unreadable or of another
model raises ValueError with one line saying which.
"""

dependencies = ["torch", "torchvision", "timm", "hydra", "omegaconf"]

VARIANTS = ("convnext_t", "convnext_s", "convnext_b", "convnext_l", "convnext_xl")


def _build(overrides, weights=None, **spec_fields):
    from pathlib import Path

    from modernize.design.config import compose, model_spec
    from modernize.design.model import build
    from modernize.design.weights import load_pretrained
    from modernize.training.evaluation import read_weights
    from modernize.training.runtime import RunError

    model = build(model_spec(compose(overrides), **spec_fields))
    if weights is not None:
        try:
            state_dict, _ = read_weights(Path(weights).expanduser(), "auto")
            load_pretrained(model, state_dict)
        except (RunError, ValueError) as e:
            lines = str(e).split("\n")
            raise ValueError(f"weights={weights}: {' '.join(' '.join(lines[:3]).split())}") from None
    return model


def _entry(name, overrides):
    def entry(weights=None, **spec_fields):
        return _build(overrides, weights, **spec_fields)
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = f"The model of `python run.py {' '.join(overrides)}`; weights=<file>, spec fields as keywords."
    return entry


def _entries():
    from modernize.design.timm_models import PREFIX, model_overrides

    named = {name.removeprefix(PREFIX): overrides for name, overrides in model_overrides().items()}
    named.update({variant: [f"model={variant}"] for variant in VARIANTS})
    return {name: _entry(name, overrides) for name, overrides in named.items()}


globals().update(_entries())
