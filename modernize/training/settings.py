"""What a run trains against how it runs, declared once: the config hash (modernize.training.identity.config_hash)
leaves out every setting named here, and the report's reproduce command (modernize.results.reproduce) leaves out those
that cannot change a run's numbers.

A run is identified by what it trains (model, recipe, data, profile, seed, precision, device choice, ...): two runs
with the same hash are the same experiment, so a finished run is skipped and a resumed one continues. The settings
below do not change what is trained; a user sets them per machine (threads, workers, accumulation on a smaller GPU)
and a committed run must still be recognised. Some of them still change the floats a CPU or GPU computes (another
thread count sums in another order, micro-batches round differently), so a command that reproduces a result keeps
them.
"""

from __future__ import annotations

from dataclasses import dataclass

# top-level config nodes that say where a run is written, how it is logged, or what task=eval reads
NOT_TRAINED_NODES = ("out_root", "sweep_name", "logger", "hydra", "eval", "preflight")


@dataclass(frozen=True)
class RunSetting:
    """A setting that says how a run executes: its dotted key, and whether the run's numbers are the same whatever
    its value (False: the same experiment, but other floats)."""

    key: str
    same_numbers: bool
    why: str


RUN_SETTINGS = (
    RunSetting("train.workers", True, "DataLoader processes; each rank's loader is seeded, whatever their number"),
    RunSetting("train.log_every_steps", True, "how often progress is printed"),
    RunSetting("train.resume", True, "whether last.pt is read back; a resumed run continues bit for bit"),
    RunSetting("train.checkpoint_every_steps", True, "how often last.pt is written"),
    RunSetting("train.throughput_batch", True, "the batch of the inference images/s measurement only"),
    RunSetting("train.threads", False, "CPU threads: the same computation, summed in another order"),
    RunSetting("train.accumulation_steps", False, "micro-batches per optimizer step: the same global batch"),
    RunSetting("train.device_batch", False, "images per forward pass on a device (with accumulation: the same "
               "global batch)"),
    RunSetting("profile.runs_at_once", True, "how many runs share a device (modernize.sweep)"),
    RunSetting("profile.for_gpu", True, "the profile is meant for a GPU: training it on a CPU needs train.device=cpu"),
)


def not_hashed() -> dict[str, list[str]]:
    """{config node: [its keys]} of the run settings, as config_hash removes them."""
    nodes: dict[str, list[str]] = {}
    for setting in RUN_SETTINGS:
        node, key = setting.key.split(".", 1)
        nodes.setdefault(node, []).append(key)
    return nodes


def reproduces_without(key: str) -> bool:
    """Whether a command that reproduces a run can leave this dotted setting out: where it is written or logged, or
    a run setting that leaves the numbers as they are."""
    if key.split(".", 1)[0] in NOT_TRAINED_NODES:
        return True
    return any(s.same_numbers and (key == s.key or key.startswith(s.key + ".")) for s in RUN_SETTINGS)
