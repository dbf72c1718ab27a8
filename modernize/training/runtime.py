"""Where a run executes: processes (torchrun / SLURM), device, threads, RNG streams, the code's commit."""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


class RunError(RuntimeError):
    """A run cannot start or go on; the message says what was wrong and what to do."""


@dataclass(frozen=True)
class Processes:
    """This process's place among the run's processes (one, or torchrun's / SLURM's several)."""

    rank: int = 0
    count: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.count > 1


def is_main_process() -> bool:
    """Rank 0 of torchrun / SLURM's tasks, known from the environment before any process group exists."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0


def setup_processes(device_kind: str) -> Processes:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; under SLURM (hydra/launcher=slurm) submitit derives them from
    the job's tasks. gloo on CPU, nccl on CUDA."""
    if "WORLD_SIZE" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    count = int(os.environ.get("WORLD_SIZE", "1"))
    if count == 1:
        return Processes()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Processes(rank=dist.get_rank(), count=dist.get_world_size(),
                     local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def wants_cuda(device: str) -> bool:
    return (device == "auto" and torch.cuda.is_available()) or str(device).startswith("cuda")


def check_device(name: str) -> None:
    """train.device names a device torch knows, and one this machine has."""
    if name == "auto":
        return
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise RunError(f"train.device must be auto, cpu, cuda, cuda:N or mps, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"train.device={name} but CUDA is not available; use train.device=cpu or auto")


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    check_device(name)
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def setup_runtime(train_cfg) -> tuple[Processes, torch.device]:
    """Processes, device, threads and determinism, from the config's `train` section."""
    processes = setup_processes("cuda" if wants_cuda(train_cfg.device) else "cpu")
    device = pick_device(train_cfg.device, processes.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if device.type == "cpu":
        set_cpu_threads(train_cfg.threads, announce=processes.is_main)
    if train_cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # pick the fastest conv kernels for the run's fixed shapes
    return processes, device


# ------------------------------------------------------------------------------------------------- threads
# Why `auto` and not PyTorch's one thread per core (docs/performance.md, benchmarks/threads.py): PyTorch's
# OpenMP threads split every op evenly and then spin at a barrier until the slowest is done. Beside another busy
# process, one of them shares its core, every op waits for it, and the waiting thread's spinning takes more of the
# time the others need: on 2 cores, the short run's 902 img/s fell to 231 with one busy process beside it and to 147
# with two (one thread: 486 and 427). OMP_WAIT_POLICY=PASSIVE stops the spinning but costs 42% on an idle machine.
# So a run counts the processes running when it starts and leaves their cores to them.
THREADS_AUTO = "auto"


def local_processes() -> int:
    """The run's processes on this machine, which share its cores and memory (torchrun's LOCAL_WORLD_SIZE)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: taskset, a SLURM or container CPU set)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def other_running_tasks(samples: int = 5, interval_s: float = 0.02) -> float | None:
    """How many tasks other than this one are running now: the median over `samples` readings of the kernel's count
    of running tasks (/proc/loadavg's 4th field), less this reader. The 1-minute load average would still count a
    sweep's previous run for a minute after it ended. None where /proc/loadavg does not exist (not Linux)."""
    path = Path("/proc/loadavg")
    if not path.exists():
        return None
    counts = []
    for i in range(samples):
        counts.append(int(path.read_text().split()[3].split("/")[0]) - 1)
        if i + 1 < samples:
            time.sleep(interval_s)
    return statistics.median(counts)


def cpu_threads(setting: int | str | None, cores: int, others: float | None, processes: int = 1) -> int | None:
    """The thread count a CPU run trains with: `auto` leaves the cores of the tasks already running to them and
    shares the rest among the run's `processes` on this machine (at least one thread each); an integer is the user's;
    null is PyTorch's (None: not set). OMP_NUM_THREADS in the environment (torchrun sets it to 1 when it starts
    several processes) wins over `auto`."""
    if setting != THREADS_AUTO:
        return None if setting is None else int(setting)
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    return idle_core_threads(cores, others, processes)


def idle_core_threads(cores: int, others: float | None, processes: int = 1) -> int:
    """Each of a run's `processes` gets its share of the cores `others` (tasks already running) leave idle, at least
    one: what `auto` sets, and what the busy-machine line advises."""
    return max(1, (cores - round(others or 0)) // processes)


def set_cpu_threads(setting: int | str | None, announce: bool = True) -> None:
    """torch.set_num_threads for a CPU run, with one line when other tasks hold cores it would otherwise use."""
    local = local_processes()  # this run's own processes on this machine are not others
    cores, others = usable_cores(), other_running_tasks()
    others = None if others is None else max(0, others - (local - 1))
    threads = cpu_threads(setting, cores, others, local)
    if threads is not None:
        torch.set_num_threads(threads)
    used = torch.get_num_threads()
    if announce and others is not None and others >= 1 and (setting == THREADS_AUTO or others + used * local > cores):
        how = (f"training with {used} thread{'s' * (used > 1)} (train.threads=auto)" if setting == THREADS_AUTO
               else f"train.threads={setting if setting is not None else 'null'} runs {used} threads on them, which "
                    f"can be several times slower than train.threads={idle_core_threads(cores, others, local)}")
        print(f"the machine is busy: {others:g} other task{'s' * (others != 1)} running on {cores} core"
              f"{'s' * (cores != 1)} at start; {how} (docs/performance.md)", flush=True)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather(processes: Processes, value: Any) -> list[Any]:
    """Every process's `value`, in rank order (a collective: all processes must call it)."""
    if not processes.distributed:
        return [value]
    gathered: list[Any] = [None] * processes.count
    dist.all_gather_object(gathered, value)
    return gathered


def barrier(processes: Processes) -> None:
    if processes.distributed:
        dist.barrier()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
