import functools
import os

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HYDRA_FULL_ERROR", "0")


@functools.cache
def _step_model(step: str, overrides: tuple[str, ...] = ()):
    from modernize import build_model

    return build_model(step, overrides=list(overrides)).eval()


@pytest.fixture(scope="session")
def step_model():
    """Built paper-scale models, shared by the tests of a session (building ResNet-scale nets takes a while)."""
    return _step_model
