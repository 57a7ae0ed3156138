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

import re

from edge_runtime.native_log import native_lines_dropped

# The pip extra each heavy command needs (README, "Installing").
EXTRAS = {"train": "train", "evaluate": "train", "convert": "convert", "bench": "convert",
          "pipeline": "convert", "study": "convert"}
OUR_PACKAGES = ("edgekit", "train", "convert", "benchmarks", "edge_runtime")

# absl's INFO prefix ("I0000 00:00:1795645287.655524    6369 port.cc:153] ") and its warning
# that comes first.
_STARTUP_NOTE = re.compile(
    r"I\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$")


def startup_notes_dropped():
    """A context that drops absl's INFO notes from file descriptor 2 and keeps the rest."""
    return native_lines_dropped(_STARTUP_NOTE)


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
