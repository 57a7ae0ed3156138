"""One edgekit command per folder: an advisory lock held while a command works on a folder (a
run's staging folder while it trains, a run while it is converted or benchmarked, a folder of
files while they are benchmarked), so that a second command started on it, in another terminal
or by a forgotten background job, stops with one line instead of mixing its files with the
first one's (two conversions of one run each rewrote manifest.json with only their own
variants) or timing the first one's load.

The lock is ``flock`` on the folder itself: nothing is left behind, and it ends with the
process however that ends. Windows has no ``flock``; there folders are not locked.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from edge_runtime.errors import UserError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


class FolderLock:
    """An exclusive lock on one folder at a time, held until ``release`` or the ``with`` block
    ends."""

    def __init__(self):
        self._descriptor: Optional[int] = None

    def take(self, folder: Path, wait: bool = False) -> None:
        """Lock ``folder`` (which exists), letting go of any other folder this lock held;
        taking the folder already held is a no-op. When another process holds it: UserError,
        or with ``wait`` a line on stderr and a wait until it ends (Ctrl-C stops the wait)."""
        if self._holds(folder) or fcntl is None:
            return
        self.release()
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise UserError(f"{folder} is in use by another edgekit command right "
                                    "now: wait for it to end, or stop it first") from None
                print(f"waiting for {folder}: another edgekit command is using it",
                      file=sys.stderr, flush=True)
                fcntl.flock(descriptor, fcntl.LOCK_EX)
        except BaseException:
            os.close(descriptor)
            raise
        self._descriptor = descriptor

    def _holds(self, folder: Path) -> bool:
        # The same path may name a new folder by now (an --overwrite deleted the old one).
        if self._descriptor is None:
            return False
        held, named = os.fstat(self._descriptor), os.stat(folder)
        return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)

    def release(self) -> None:
        """Let go of the folder held, if any."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


@contextmanager
def folder_held(path: Path) -> Iterator[None]:
    """Hold ``path`` for the block when it is a folder; any other path is left to the
    command's own check, which says what it is not."""
    with FolderLock() as lock:
        if Path(path).is_dir():
            lock.take(Path(path))
        yield
