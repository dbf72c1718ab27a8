"""torch.hub entry points: every model of the ConvNeXt roadmap (Figure 2), the kernel sizes of its kernel sweep, and
the ConvNeXt family (T/S/B/L/XL).

    model = torch.hub.load("<this checkout>", "inverted_bottleneck", source="local")
    model = torch.hub.load("<this checkout>", "convnext_t", source="local", weights="convnext_tiny_1k_224_ema.pth")
    model = torch.hub.load("<this checkout>", "gelu", source="local", num_classes=10, drop_path_rate=0.1)

Each entry builds the paper's full-width model, as `modernize.build_model` does; keyword arguments set fields of its
spec (num_classes, drop_path_rate, in_chans, ...: modernize.design.spec.ModelSpec). `weights=` reads a file of ours
(a run's last.pt or weights.pt, its EMA's weights when it holds them) or an official / timm / torchvision state dict,
converted as task=eval converts it (modernize/design/weights.py); a file that is missing, unreadable or of another
model raises ValueError with one line saying which. A file `python -m modernize.export` wrote carries a model card
(inside a .safetensors file, or the .json beside it): the model is then the run's as it was trained (a profile's
width, its classes), and the `exported` entry builds it whatever its step:

    model = torch.hub.load("<this checkout>", "exported", source="local",
                           weights="gelu-seed0-safetensors-ema.safetensors")
"""

# What loading a model needs: an exported file (the `exported` entry, or weights= with a card) is built from its card
# alone. The step entries compose the step's config (conf/), which also takes hydra-core and omegaconf; they say so
# in one line where those are missing.
dependencies = ["torch", "torchvision", "timm"]

VARIANTS = ("convnext_t", "convnext_s", "convnext_b", "convnext_l", "convnext_xl")


def _build(overrides, weights=None, **spec_fields):
    try:
        from modernize.design.config import compose, model_spec
    except ImportError as e:
        raise ImportError(f"the step entries compose the step's config with Hydra ({e}): pip install hydra-core "
                          f"omegaconf, or load an exported file with the 'exported' entry, which needs neither"
                          ) from None

    spec = model_spec(compose(overrides), **spec_fields)
    if weights is None:
        return _model(spec)
    card, path = _card(weights)
    if card is not None:  # an exported run: its spec as trained (profile width, classes), if it is this entry's design
        from modernize.design.export import profile_differences, spec_of_card

        trained = spec_of_card(card, **spec_fields)
        differences = profile_differences(trained, spec)
        if differences:
            raise ValueError(f"weights={weights} is a run of {card['step']}, not this entry's model: it differs in "
                             f"{'; '.join(differences[:4])}; load it with the 'exported' entry")
        return _model(trained, path, card)
    return _model(spec, path)


def exported(weights, **spec_fields):
    """The model of a file `python -m modernize.export` wrote (its model card: inside a .safetensors file, or the
    .json beside the file), whatever its step, as the run trained it; spec fields as keywords. Its `pretrained_cfg`
    is the run's preprocessing, so timm.data.resolve_data_config(model=model) gives the run's transform."""
    from modernize.design.export import spec_of_card

    card, path = _card(weights)
    if card is None:
        raise ValueError(f"weights={weights} has no model card (a .safetensors file of python -m modernize.export, "
                         f"or a file with its .json beside it): load it with the entry of its step")
    return _model(spec_of_card(card, **spec_fields), path, card)


def _card(weights):
    from pathlib import Path

    from modernize.design.export import card_of

    path = Path(weights).expanduser()
    try:
        return (card_of(path) if path.is_file() else None), path
    except Exception as e:  # noqa: BLE001 - a cut safetensors header, a card that is not JSON: one line
        raise ValueError(f"weights={weights}: cannot read its model card ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:160]})") from None


def _model(spec, path=None, card=None):
    from modernize.design.export import preprocessing_of_card
    from modernize.design.model import build
    from modernize.design.timm_models import pretrained_cfg
    from modernize.design.weights import WeightsError, load_pretrained, read_weights

    model = build(spec)
    if card is not None:  # what the run's model expects of an image, where timm's resolve_data_config looks
        model.pretrained_cfg = pretrained_cfg(preprocessing_of_card(card), spec)
    if path is not None:
        try:
            state_dict, _ = read_weights(path, "auto", setting="weights")  # a missing or cut file: one line of its own
        except WeightsError as e:
            raise ValueError(str(e)) from None
        try:
            load_pretrained(model, state_dict)
        except ValueError as e:  # several lines (missing keys, shapes): the first three, joined
            lines = str(e).split("\n")
            raise ValueError(f"weights={path}: {' '.join(' '.join(lines[:3]).split())}") from None
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
