"""The heavy stack behind train, evaluate, convert, bench, pipeline and study: Keras (and
TensorFlow behind it), imported once up front with TensorFlow's start-up notes dropped, and a
missing package reported as the extra to install instead of a traceback.

TensorFlow 2.21 logs through absl before absl's logging is set up, so TF_CPP_MIN_LOG_LEVEL
does not reach its import-time lines ("oneDNN custom operations are on", "Could not find cuda
drivers on your machine"). They go to file descriptor 2 from C++, out of Python's reach, and
land in the middle of a command's first line (bench's progress bar) or at the top of every
study cell's log.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

# The pip extra each heavy command needs (README, "Installing").
EXTRAS = {"train": "train", "evaluate": "train", "convert": "convert", "bench": "convert",
          "pipeline": "convert", "study": "convert"}
OUR_PACKAGES = ("edgekit", "train", "convert", "benchmarks", "edge_runtime")

# absl's INFO prefix ("I0000 00:00:1795645287.655524    6369 port.cc:153] ") and its warning
# that comes first.
_STARTUP_NOTE = re.compile(
    r"I\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$")


@contextmanager
def startup_notes_dropped() -> Iterator[None]:
    """Run the block with file descriptor 2 captured, then pass on every captured line but
    absl's INFO notes: warnings and errors still reach stderr, after the block."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # stderr closed (2>&-): nothing to keep clean
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not _STARTUP_NOTE.match(line)))
            sys.stderr.flush()


def import_keras() -> None:
    """Import Keras (TensorFlow too under its default backend) without the start-up notes."""
    with startup_notes_dropped():
        import keras  # noqa: F401


def missing_package_message(command: str, error: ModuleNotFoundError) -> str | None:
    """The one-line error for a package a heavy command needs but this Python lacks (an
    install of the device runtime alone, say), or None when the error is not that."""
    package = (error.name or "").split(".")[0]
    if command not in EXTRAS or not package or package in OUR_PACKAGES:
        return None
    return (f"edgekit {command} needs {package}, which is not installed here: "
            f"pip install 'edgekit[{EXTRAS[command]}]'")
