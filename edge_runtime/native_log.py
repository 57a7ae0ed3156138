"""Native libraries' notes on file descriptor 2, dropped.

TensorFlow, the TFLite interpreters and OpenCV log from C++ straight to file descriptor 2, out
of reach of Python's logging and of their own log-level variables at the moments that matter
(TensorFlow's import, LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on
every model load, OpenCV's warnings as it opens a camera). ``native_lines_dropped`` runs a
block with descriptor 2 captured and passes on every captured line but the notes it is told
to drop, so warnings and errors still show.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def native_lines_dropped(note: re.Pattern) -> Iterator[None]:
    """Run the block with file descriptor 2 captured, then write every captured line that
    ``note`` does not match to stderr (after the block, also when it raises)."""
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
            sys.stderr.write("".join(line for line in lines if not note.match(line)))
            sys.stderr.flush()
