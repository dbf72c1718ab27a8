"""Stopping a run cleanly on a signal: save where it is, finish W&B, say how to resume, exit non-zero.

Handled signals: SIGTERM (what `kill`, SLURM's preemption and its time limit send, KillWait seconds before
SIGKILL), SIGINT (Ctrl-C), and SIGUSR1/SIGUSR2, which SLURM sends ahead of the time limit when asked to
(`sbatch --signal=B:USR1@120`; hydra-submitit-launcher asks for USR2 `signal_delay_s` before the limit). The handler
only sets a flag; the training loop looks at it after every optimizer step, saves a mid-epoch checkpoint there
(the same one `train.checkpoint_every_steps` writes, so the re-run resumes exactly) and raises `Interrupted`.
A handler that was installed before ours (submitit's requeue on USR2) is called after the checkpoint is saved.
A second Ctrl-C stops at once (KeyboardInterrupt), for a run stuck outside the training loop.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from .runtime import Processes, RunError

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2") if hasattr(signal, name))


class Interrupted(RunError):
    """The run stopped on a signal after saving its checkpoint; exit_code is the shell's 128 + signal number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum, self.exit_code = signum, 128 + signum


class SignalWatch:
    """Records the first stop signal; `requested()` says whether any process of the run received one."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, wherever the run is
        self.signum = self.signum or signum

    def requested(self, processes: Processes, device: torch.device) -> bool:
        """Whether to stop (a collective in a distributed run: every process stops at the same step)."""
        if not processes.distributed:
            return self.signum is not None
        flag = torch.tensor([self.signum or 0], device=device, dtype=torch.int64)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self.signum = self.signum or int(flag.item()) or None
        return self.signum is not None

    def stop(self, where: str, checkpoint: str, tracker: Any = None) -> Interrupted:
        """After the checkpoint is saved: hand over to a handler installed before ours (submitit's requeue), mark
        the W&B run preempted, and return the exception that ends the run."""
        signum = self.signum or signal.SIGTERM
        if tracker is not None:
            tracker.mark_preempting()
        chained = self.previous.get(signum)
        if callable(chained) and chained is not signal.default_int_handler:
            chained(signum, None)
        name = signal.Signals(signum).name
        return Interrupted(f"interrupted by {name} at {where}; saved {checkpoint}; run the same command to resume",
                           signum)


@contextlib.contextmanager
def watch_signals() -> Iterator[SignalWatch]:
    """Install the handlers for the block (main thread only: elsewhere signals cannot be caught; nothing is)."""
    watch = SignalWatch()
    if threading.current_thread() is not threading.main_thread():
        yield watch
        return
    for signum in SIGNALS:
        watch.previous[signum] = signal.signal(signum, watch._handle)
    try:
        yield watch
    finally:
        for signum, handler in watch.previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
