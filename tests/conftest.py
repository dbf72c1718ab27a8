import functools
import os
import tempfile

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HYDRA_FULL_ERROR", "0")
# Paper-scale params/GFLOPs are cached per spec (modernize.design.flops.paper_scale_stats): one cache per test session,
# shared by its subprocesses, never the user's.
os.environ.setdefault("MODERNIZE_CACHE_DIR", tempfile.mkdtemp(prefix="modernize-test-cache-"))
if "PYTEST_XDIST_WORKER" in os.environ:
    # One pytest worker per core (make test): a worker with a thread per core as well would oversubscribe the CPU,
    # and OpenMP's spinning threads then slow some steps down twenty-fold.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


@functools.cache
def _step_model(step: str, overrides: tuple[str, ...] = ()):
    from modernize import build_model

    return build_model(step, overrides=list(overrides)).eval()


@pytest.fixture(scope="session")
def step_model():
    """Built paper-scale models, shared by the tests of a session (building ResNet-scale nets takes a while)."""
    return _step_model


@pytest.fixture(autouse=True)
def restore_torch_globals():
    """An in-process run sets torch's thread count and deterministic mode for the whole process (train.threads,
    train.deterministic); put them back so later tests in this worker run as they would alone."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
