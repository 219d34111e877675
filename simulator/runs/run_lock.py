"""One writer per run folder: an advisory lock that `run` and `resume` hold while they write.

The lock is `fcntl.flock` on `<run>/.writer.lock`, which the kernel releases when its
process ends however it ends (kill -9 included). So a manifest that still says `running`
while nobody holds the lock belongs to a writer that died: such a run is `crashed`. On
systems without `fcntl` (Windows) runs are not locked and never reported as crashed.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import IO, Any

from simulator.foundations.errors import PrivsimError
from simulator.runs.outputs import now_iso

LOCK_FILE = ".writer.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]


class RunLock:
    """Held while a process writes a run folder; `release` (or process exit) frees it."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._handle: IO[str] | None = None

    def acquire(self) -> RunLock:
        """Take the folder, or refuse naming the process that holds it."""
        if fcntl is None:
            return self
        handle = (self.run_dir / LOCK_FILE).open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise PrivsimError(
                f"{self.run_dir}: another privsim process is writing this run folder "
                f"({holder}); wait for it or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": now_iso()}))
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        """Free the folder (the lock file stays; an unheld lock file means nothing)."""
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _describe(text: str) -> str:
    try:
        holder: dict[str, Any] = json.loads(text)
        return f"pid {holder['pid']} on {holder['host']}, since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def writer_alive(run_dir: Path) -> bool:
    """Whether some process holds the folder's lock now (False without a lock file)."""
    path = run_dir / LOCK_FILE
    if fcntl is None or not path.is_file():
        return fcntl is None
    with path.open("r", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def run_status(run_dir: Path, manifest: dict[str, Any]) -> str:
    """The manifest's status, except that `running` with no live writer is `crashed`."""
    status = str(manifest.get("status", "unknown"))
    if status == "running" and not writer_alive(run_dir):
        return "crashed"
    return status
