"""Shared fixtures: tiny image-folder trees written by the tests themselves."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from edgekit.common.tiny_data import COLOURS, LABELS, write_class_tree  # noqa: E402,F401
# The emulated Pis `edgekit check --setup` built, for tests/test_emulated_pi.py; every other
# test's conversion checks its files on this machine's runtimes only (seconds, not minutes).
from edgekit.convert.device_envs import default_cache  # noqa: E402

# pytest-xdist's workers inherit the environment of the process that started them, where this
# file already replaced $EDGEKIT_DEVICE_ENVS: the real cache is kept under a name of its own.
os.environ.setdefault("EDGEKIT_TEST_DEVICE_ENVS", str(default_cache()))
DEVICE_ENVS = Path(os.environ["EDGEKIT_TEST_DEVICE_ENVS"])
os.environ["EDGEKIT_DEVICE_ENVS"] = tempfile.mkdtemp(prefix="edgekit-test-device-envs-")


def default_ctrl_c() -> None:
    """Popen preexec_fn for a child that a test stops with SIGINT: Ctrl-C's default action, as
    at a terminal. A shell starts background jobs (``pytest ... &``) with SIGINT ignored, the
    children inherit that, and Python then installs no KeyboardInterrupt handler at all."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ignored_ctrl_c() -> None:
    """Popen preexec_fn for a child started as a background job of a non-interactive shell or
    under nohup: SIGINT ignored, so that only SIGTERM can stop it cleanly."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture
def python_ctrl_c() -> Iterator[None]:
    """Python's own SIGINT handler (KeyboardInterrupt) during the test, for a test that sends
    SIGINT to its own process: pytest started with SIGINT ignored (``pytest ... &`` from a
    script, nohup) has none, and the signal would pass unnoticed."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@contextmanager
def interrupted_at_epoch(epoch: int) -> Iterator[None]:
    """Within it, training stops as Ctrl-C would at the end of epoch ``epoch`` (0-based),
    before that epoch is checkpointed."""
    from edgekit.train import checkpoint as epoch_progress

    original = epoch_progress.EpochProgress.on_epoch_end

    def stop(self, index, logs=None):
        if index == epoch:
            raise KeyboardInterrupt
        original(self, index, logs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(epoch_progress.EpochProgress, "on_epoch_end", stop)
        yield


@pytest.fixture
def tiny_tree(tmp_path) -> Path:
    """tmp/data/train/<3 classes x 12> and tmp/data/test/<3 classes x 4>."""
    root = tmp_path / "data"
    write_class_tree(root / "train", 12, seed=1)
    write_class_tree(root / "test", 4, seed=2)
    return root


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A private decode cache so tests never touch ~/.cache."""
    path = tmp_path / "cache"
    monkeypatch.setenv("EDGEKIT_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def converted_run(tmp_path_factory):
    """(run_dir, exit code, manifest): a 3-class seed_cnn trained for 3 epochs on a tiny tree
    (tests/data beside it) and converted into every variant, once per test session."""
    import json

    from edgekit.cli import main

    root = tmp_path_factory.mktemp("convert")
    os.environ["EDGEKIT_CACHE"] = str(root / "cache")
    write_class_tree(root / "data" / "train", 16, seed=1)
    write_class_tree(root / "data" / "test", 4, seed=2)
    run = root / "run"
    assert main(["train", "--data", str(root / "data"), "--out", str(run), "--epochs", "3",
                 "--batch-size", "8", "--val-fraction", "0.25"]) == 0
    code = main(["convert", str(run), "--qat-epochs", "1", "--calibration-size", "30"])
    manifest = json.loads((run / "artifacts" / "manifest.json").read_text())
    return run, code, manifest


@pytest.fixture(scope="session")
def source_copy(tmp_path_factory) -> Path:
    """A copy of this repository's sources to build or install from: setuptools writes its
    build/ folder beside the sources it builds."""
    import shutil

    source = tmp_path_factory.mktemp("source") / "edgekit"
    shutil.copytree(Path(__file__).resolve().parents[1], source, ignore=lambda folder, names: [
        name for name in names if name in (".git", "build", "runs", "__pycache__")
        or name.endswith(".egg-info")])
    return source


@pytest.fixture(scope="session")
def pi_python(tmp_path_factory, source_copy) -> str:
    """A Python shaped like Raspberry Pi OS's: $EDGEKIT_PI_PYTHON (which must have this
    project installed), or a fresh venv with only numpy<2, tflite-runtime 2.14, pillow and this
    project installed as a user installs it on a Pi, without its extras (no TensorFlow)."""
    import subprocess
    import sys

    given = os.environ.get("EDGEKIT_PI_PYTHON")
    if given:
        return given
    venv = tmp_path_factory.mktemp("pi") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "numpy<2", "pillow", "tflite-runtime==2.14.0"], check=True, timeout=600)
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-deps", str(source_copy)], check=True, timeout=600)
    return python
