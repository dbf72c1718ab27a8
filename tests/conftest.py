import functools
import os
import tempfile

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HYDRA_FULL_ERROR", "0")
# Paper-scale params/GFLOPs are cached per spec (modernize.flops.paper_scale_stats): one cache per test session,
# shared by its subprocesses, never the user's.
os.environ.setdefault("MODERNIZE_CACHE_DIR", tempfile.mkdtemp(prefix="modernize-test-cache-"))


@functools.cache
def _step_model(step: str, overrides: tuple[str, ...] = ()):
    from modernize import build_model

    return build_model(step, overrides=list(overrides)).eval()


@pytest.fixture(scope="session")
def step_model():
    """Built paper-scale models, shared by the tests of a session (building ResNet-scale nets takes a while)."""
    return _step_model
