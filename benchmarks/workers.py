"""The parent's side of benchmarks.bench_worker: start a subject's process, send it commands,
read its answers, with timeouts so a hung child cannot hang the benchmark."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

import edge_runtime

# The worker imports nothing of ours but edge_runtime, so it runs from its file in any Python:
# this one, or another environment's (tflite-runtime needs numpy < 2) that has only the
# runtime, found through PYTHONPATH (worker_environment).
WORKER_FILE = Path(__file__).with_name("bench_worker.py")
RUNTIME_ROOT = Path(edge_runtime.__file__).resolve().parents[1]


def worker_environment() -> dict:
    """The environment of a worker: edge_runtime importable (also from another Python that has
    nothing of ours installed) and TensorFlow's start-up chatter off."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join([str(RUNTIME_ROOT), os.environ.get("PYTHONPATH", "")])}


def worker_command(python: str, *arguments) -> list[str]:
    """The command line of a worker: bench_worker.py's main with ``ARGUMENTS`` in ``python``.
    The -c code drops the working folder from sys.path first, where a user's own folder named
    edge_runtime would shadow ours."""
    return [python, "-c", "import runpy, sys; del sys.path[0]; "
            "runpy.run_path(sys.argv.pop(1), run_name='__main__')",
            str(WORKER_FILE), *map(str, arguments)]


def predict_elsewhere(python: str, backend: str, model: Path, pixels: np.ndarray,
                      tta: str = "none") -> list:
    """Top-1 classes of ``pixels`` through a runtime installed in another Python."""
    with tempfile.TemporaryDirectory() as folder:
        pixels_file = Path(folder) / "pixels.npy"
        np.save(pixels_file, pixels)
        result = subprocess.run(worker_command(python, "predict", backend, Path(model),
                                               pixels_file, tta),
                                capture_output=True, text=True,
                                env=worker_environment(), timeout=1800)
    lines = result.stdout.strip().splitlines()
    if not lines:
        raise WorkerError(f"{python} failed: {result.stderr.strip().splitlines()[-1:]}")
    answer = json.loads(lines[-1])
    if "error" in answer:
        raise WorkerError(answer["error"])
    return answer["top1"]


class WorkerError(Exception):
    """A subject's process failed to start, answered with an error, or stopped answering."""


class Worker:
    """One subject's process: ``kind`` is a runtime backend name or keras-call/keras-predict;
    ``tta`` the runtime's test-time augmentation mode."""

    def __init__(self, kind: str, target: Path, threads: int, python: str = sys.executable,
                 start_timeout: float = 300, tta: str = "none"):
        self.process = subprocess.Popen(
            worker_command(python, kind, Path(target), str(threads), tta),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=worker_environment())
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.hello = self._answer(start_timeout)
        if "error" in self.hello:
            self.close()
            raise WorkerError(self.hello["error"])

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _answer(self, timeout: float) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise WorkerError(f"no answer within {timeout:g} s") from None
        if line is None:
            raise WorkerError(f"the process ended (exit status {self.process.wait()})")
        return json.loads(line)

    def ask(self, command: dict, timeout: float = 300) -> dict:
        """Send one command and wait for its answer."""
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise WorkerError("the process ended") from None
        return self._answer(timeout)

    def close(self) -> None:
        """Stop the process (after ``exit`` it is already stopping)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
