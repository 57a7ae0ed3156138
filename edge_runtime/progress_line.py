"""A one-line progress counter on a terminal's stderr, for the runtime's long loops.

The device runtime installs numpy, pillow and one interpreter, not tqdm, so this is the
few lines it needs: ``label: done/total`` rewritten in place at most every ``interval``
seconds, and a cleared line at the end. Off a terminal (a log, a pipe, CI) it writes nothing.
``counted`` words a count for such lines and every stage's reports ("1 frame", "2 threads").
"""
from __future__ import annotations

import time
from typing import TextIO


def counted(count: int, noun: str) -> str:
    """'1 thread', '2 threads', '1 epoch': a count and its noun, plural unless one."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


class ProgressLine:
    """``update(done)`` as work goes; ``close()`` when it ends (wipes the line), which a
    ``with`` block does however it ends, Ctrl-C included. ``wanted=False`` keeps it silent,
    for a caller whose output already shows progress."""

    def __init__(self, label: str, total: int, stream: TextIO, interval: float = 0.5,
                 wanted: bool = True):
        self.label, self.total, self.stream, self.interval = label, total, stream, interval
        self.enabled = wanted and stream.isatty()
        self._shown_at = float("-inf")
        self._width = 0

    def update(self, done: int, note: str = "") -> None:
        """Show ``done`` of ``total`` (and ``note``) if ``interval`` seconds have passed."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._shown_at < self.interval:
            return
        self._shown_at = now
        text = f"{self.label}: {done}/{self.total}{note}"
        # Spaces over what a longer earlier line left behind.
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        """Clear the line, so the summary that follows starts at the left margin."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()

    def __enter__(self) -> "ProgressLine":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
