"""One run per run directory: an exclusive lock on `<run dir>/.lock`, held for the run's life.

Two runs started on the same folder (the same hydra.run.dir, or a sweep restarted while its first launch still
runs) would write one checkpoint, config and summary in turn, and one result would be lost without a word. The
first takes the lock; the second refuses at once, naming the holder's PID and host. The lock is `flock(2)`: the
operating system drops it when its process ends however it ends (SIGKILL, OOM, power loss of a local disk), so a
lock file left by a killed run never blocks the next one. Only the main process (rank 0) of a distributed run takes
it. On network file systems without flock support (old NFS), flock may not exclude runs on other hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from .runtime import RunError

LOCK_NAME = ".lock"


class RunDirBusy(RunError):
    """Another live process holds the run directory."""


@contextlib.contextmanager
def run_lock(run_dir: Path, enabled: bool = True) -> Iterator[None]:
    """Hold `<run_dir>/.lock` exclusively for the block; RunError at once if another process holds it."""
    if not enabled:
        yield
        return
    path = Path(run_dir) / LOCK_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RunError(f"cannot write in the run directory {run_dir}: {e.strerror or e}; pass a writable "
                       f"hydra.run.dir=... (or out_root=...)") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RunDirBusy(f"{run_dir} is in use by {holder}; two runs in one run directory would overwrite each "
                           f"other's results. Wait for it, or use another hydra.run.dir=... / sweep_name=...") \
                from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the flock
