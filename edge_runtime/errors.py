"""Error types shared by every stage, and the one line a user is shown for them.

They live in edge_runtime because it is the foundation every other stage may import; the CLI
prints a ``UserError`` as one line and exits non-zero instead of showing a traceback.
"""
from __future__ import annotations

import errno
import os
import signal
import sys
import unicodedata
from typing import Optional


class UserError(Exception):
    """A problem the user can fix (bad path, bad flag, bad file): reported as one line."""


class ImageReadError(UserError):
    """An image file could not be opened or decoded."""


def check_counts(*flags: tuple[str, Optional[int]]) -> None:
    """UserError naming the first of the (flag, value) pairs whose value is below 1; a value
    of None (a flag not given) is not checked."""
    for flag, value in flags:
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")


def first_line(error: Exception) -> str:
    """The first line of an exception's message (its type's name when it has none): libraries'
    messages run over several lines, and an error we report is one line."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def damage_reason(exc: Exception) -> str:
    """What is wrong with a damaged JSON file, in a few words: the missing key, or the first
    line of the parser's message."""
    if isinstance(exc, KeyError):
        return f"no {exc}"
    return first_line(exc)


def printable(text: str) -> str:
    """``text`` safe to show on a terminal on one line: control characters (a line break that
    would forge another line, the escape byte that starts a terminal command), line and
    paragraph separators and the bidirectional overrides written as Python escapes (``\\n``,
    ``\\x1b``). File names, labels inside model files and manifests come from anyone."""
    return "".join(repr(char)[1:-1] if unicodedata.category(char) in ("Cc", "Zl", "Zp")
                   or "\u202a" <= char <= "\u202e" or "\u2066" <= char <= "\u2069" else char
                   for char in text)


def print_user_error(exc: BaseException, program: str) -> bool:
    """Print ``PROGRAM: error: ...`` on one line for an error the user can fix; False, printing
    nothing, for a bug, which keeps its traceback. Besides ``UserError``: a path the system
    refused (a folder under a file, a read-only folder, no access, a missing file) and a full
    disk."""
    if isinstance(exc, UserError):
        line = str(exc)
    elif isinstance(exc, OSError) and (exc.filename is not None
                                       or exc.errno in (errno.ENOSPC, errno.EDQUOT)):
        where = f"{exc.filename}: " if exc.filename is not None else ""
        line = f"{where}{exc.strerror or exc}"
    else:
        return False
    print(f"{program}: error: {printable(line)}", file=sys.stderr)
    return True


def module_command(name: str, description: str, add_arguments, run, argv=None) -> int:
    """``python3 -m edge_runtime.NAME``: an edgekit command of the runtime without the edgekit
    CLI, for a device that has the runtime alone; a user's error is one line and exit 2,
    Ctrl-C exit 130, as under ``edgekit``."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python3 -m edge_runtime.{name}",
                                     description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    program = f"edgekit {name.replace('_command', '')}"
    try:
        return flushed(run(args))
    except BrokenPipeError:
        return closed_pipe_status()
    except (UserError, OSError) as exc:
        if not print_user_error(exc, program):
            raise
        return 2
    except KeyboardInterrupt:
        return 130


def flushed(status: int) -> int:
    """``status``, once stdout's buffer is written. Printed lines may still sit there (stdout
    is a pipe, which Python buffers unless PYTHONUNBUFFERED is set): a reader that went away
    must fail this flush, where the caller catches it, not the one at exit, which prints a
    traceback."""
    sys.stdout.flush()
    return status


def closed_pipe_status() -> int:
    """The exit status after the reader of stdout went away (``edgekit classify ... | head``):
    141, as shell tools end on SIGPIPE. Stdout is pointed at /dev/null first, so that Python's
    flush at exit does not fail on the same pipe and print a second error."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 128 + signal.SIGPIPE
