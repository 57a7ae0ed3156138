"""Run a study's cells as child processes, N at a time, that one Ctrl-C stops together.

A cell is an ``edgekit pipeline`` run: the study hands its child the cell's PipelineSettings
(pickled into a file of the pool's, which only our own child reads), and the child runs them
as ``edgekit pipeline`` would (``main`` below), its output in the cell's log.

Each cell runs in a process session of its own, so the terminal's Ctrl-C reaches only the
study. The study then sends one SIGINT to every running cell (its training keeps its last
whole epoch in RUN_DIR.partial, and its log says so) and starts no further cell. A second
Ctrl-C while they wind down kills them, so no cell is left running without its study.
"""
from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence

INTERRUPTED = 128 + signal.SIGINT  # the status of a cell that was never started


class CellPool:
    """A pool of ``jobs`` threads, each running one cell's process at a time."""

    def __init__(self, jobs: int):
        self._threads = ThreadPoolExecutor(max_workers=jobs)
        self._lock = threading.Lock()  # guards _running and _stopped across the threads
        self._running: set[subprocess.Popen] = set()
        self._stopped = False
        self._folder = tempfile.TemporaryDirectory(prefix="edgekit-cells-")

    def submit(self, work: Callable, *args) -> Future:
        """Queue ``work(*args)`` on the pool's threads."""
        return self._threads.submit(work, *args)

    def run(self, name: str, pipeline, log_path: Path) -> int:
        """Run one cell's pipeline (PipelineSettings) to its end in a child process, its output
        appended to ``log_path``; its exit status, or INTERRUPTED without starting it (no log,
        no message) once stopped."""
        from .common.child_process import module_command

        settings_file = Path(self._folder.name) / f"{name}.pickle"
        settings_file.write_bytes(pickle.dumps(pipeline))
        command = module_command(sys.executable, "edgekit.cell_pool", str(settings_file))
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
        try:
            self._stop(exc_type)
        finally:
            self._folder.cleanup()

    def _stop(self, exc_type) -> None:
        if exc_type is None or not issubclass(exc_type, KeyboardInterrupt):
            self._threads.shutdown(wait=True)
            return
        self._signal_running(lambda process: process.send_signal(signal.SIGINT))
        try:
            self._threads.shutdown(wait=True, cancel_futures=True)
        except KeyboardInterrupt:  # a second Ctrl-C: do not wait for the cells to wind down
            self._signal_running(lambda process: process.kill())
            raise


def run_cell(pipeline) -> int:
    """Run a cell's PipelineSettings as ``edgekit pipeline`` would, in this process, ending as
    it ends (one line for a user's error, 130 on Ctrl-C): the child's work here, a Ray
    task's under ``--executor ray``."""
    from .outcome import command_status, exit_status
    from .pipeline import check_same_training, run_pipeline

    def checked_and_run() -> int:
        if "train" not in pipeline.redo:  # a cell trained otherwise is refused, as by the command
            check_same_training(pipeline)
        return run_pipeline(pipeline)

    return command_status("pipeline", lambda: exit_status("pipeline", checked_and_run))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The child's side: run the pickled PipelineSettings in the file ``argv[0]``."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    path = Path((sys.argv[1:] if argv is None else argv)[0])
    return run_cell(pickle.loads(path.read_bytes()))
