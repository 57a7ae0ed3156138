"""Run a study's cells as child processes, N at a time, that one Ctrl-C stops together.

Each cell runs in a process session of its own, so the terminal's Ctrl-C reaches only the
study. The study then sends one SIGINT to every running cell (its training keeps its last
whole epoch in RUN_DIR.partial, and its log says so) and starts no further cell. A second
Ctrl-C while they wind down kills them, so no cell is left running without its study.
"""
from __future__ import annotations

import signal
import subprocess
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

INTERRUPTED = 128 + signal.SIGINT  # the status of a cell that was never started


class CellPool:
    """A pool of ``jobs`` threads, each running one cell's process at a time."""

    def __init__(self, jobs: int):
        self._threads = ThreadPoolExecutor(max_workers=jobs)
        self._lock = threading.Lock()  # guards _running and _stopped across the threads
        self._running: set[subprocess.Popen] = set()
        self._stopped = False

    def submit(self, work: Callable, *args) -> Future:
        """Queue ``work(*args)`` on the pool's threads."""
        return self._threads.submit(work, *args)

    def run(self, name: str, command: Sequence[str], log_path: Path) -> int:
        """Run one cell's command to its end, its output appended to ``log_path``; its exit
        status, or INTERRUPTED without starting it (no log, no message) once stopped."""
        with self._lock:
            if self._stopped:
                return INTERRUPTED
            with open(log_path, "a") as log:  # the child keeps its own copy of the handle
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
            self._running.add(process)
        # A cell can train for an hour with its output in its log: say which cells are running.
        print(f"{name}: started (log: {log_path})", flush=True)
        try:
            return process.wait()
        finally:
            with self._lock:
                self._running.discard(process)

    def _signal_running(self, send: Callable[[subprocess.Popen], None]) -> None:
        with self._lock:
            self._stopped = True
            for process in self._running:
                send(process)

    def __enter__(self) -> "CellPool":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None or not issubclass(exc_type, KeyboardInterrupt):
            self._threads.shutdown(wait=True)
            return
        self._signal_running(lambda process: process.send_signal(signal.SIGINT))
        try:
            self._threads.shutdown(wait=True, cancel_futures=True)
        except KeyboardInterrupt:  # a second Ctrl-C: do not wait for the cells to wind down
            self._signal_running(lambda process: process.kill())
            raise
