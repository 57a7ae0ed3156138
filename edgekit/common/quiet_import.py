"""Keras (and TensorFlow behind it) imported without TensorFlow's start-up notes.

TensorFlow 2.21 logs through absl before absl's logging is set up, so TF_CPP_MIN_LOG_LEVEL
does not reach its import-time lines ("oneDNN custom operations are on", "Could not find cuda
drivers on your machine"). They go to file descriptor 2 from C++, out of Python's reach, and
land in the middle of a command's first line (bench's progress bar) or at the top of every
study cell's log. Keras-free itself, so that a command can check its flags first.
"""
from __future__ import annotations

import re

from edge_runtime.native_log import native_lines_dropped

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
