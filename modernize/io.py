"""Writing results so that a half-written file never looks valid: write a temp file, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


class WriteError(RuntimeError):
    """A result could not be written (disk full, quota, read-only or unwritable folder); the file it would have
    replaced is untouched."""


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call write(tmp_path) and move tmp_path onto path (atomic on POSIX: readers see old or new, never half).

    Any failure to write (OSError, or the RuntimeError torch.save raises from its C++ writer on a full disk) becomes
    one WriteError naming the path; the temp file is removed and the previous file at `path` kept."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results should be readable like any file
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        raise WriteError(f"cannot write {path}: {_reason(e)}; the previous file (if any) is kept. Free space or "
                         f"fix the folder's permissions, then run the same command again") from e
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _reason(error: BaseException) -> str:
    """One line: the OS's reason (No space left on device, Permission denied...) where there is one."""
    for e in (error, error.__cause__, error.__context__):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
    text = " ".join(str(error).split())
    if "inline_container" in text or "PytorchStreamWriter" in text:  # torch.save's C++ writer: no errno kept
        return "write failed (disk full or quota exceeded?)"
    return text[:200] or type(error).__name__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def cache_dir() -> Path:
    """Where the package keeps files between runs (computed FLOPs, downloaded data): $MODERNIZE_CACHE_DIR, else
    ~/.cache/modernize."""
    return Path(os.environ.get("MODERNIZE_CACHE_DIR") or "~/.cache/modernize").expanduser()
