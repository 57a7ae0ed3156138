"""How a command ends: on an error the user can fix (a bad flag or file, a refused file
operation, a missing extra) with one line ``edgekit: error: ...`` and exit status 2, no
traceback; on Ctrl-C with 130 and what to do next; on a closed output pipe quietly with 141.
The pipeline ends each stage the same way, so a stage fails as it does when typed alone, and a
study's cell ends as the command would."""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

# What the user can do after Ctrl-C, by command.
RESUME_HINTS = {
    "train": "; the run continues with --resume",
    "pipeline": "; the same command resumes where it stopped",
    "study": "; the same command resumes where it stopped",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a service manager stopping the command), raised where Ctrl-C raises
    KeyboardInterrupt, so that a terminated command cleans up as an interrupted one does: the
    training keeps its last whole epoch, the conversion removes its work folder and its child.
    It also stops a command started with SIGINT ignored (a background job, nohup)."""


def _terminate(number, frame) -> None:
    raise Terminated


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within it, SIGTERM raises Terminated in the main thread (elsewhere nothing changes:
    only the main thread receives signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def command_status(command: str, call: Callable[[], int]) -> int:
    """``call()``'s exit status: Ctrl-C is 130 and SIGTERM 143, each with a line saying how to
    resume, and a closed output pipe (``edgekit classify ... | head``) ends quietly with 141,
    as shell tools do."""
    from edge_runtime.errors import closed_pipe_status, flushed

    try:
        with sigterm_as_interrupt():
            return flushed(call())
    except Terminated:
        print(f"edgekit: terminated{RESUME_HINTS.get(command, '')}", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"edgekit: interrupted{RESUME_HINTS.get(command, '')}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return closed_pipe_status()


def exit_status(command: str, call: Callable[[], int]) -> int:
    """``call()``'s exit status; 2 with one line on stderr for a user's error in ``command``."""
    from edge_runtime.errors import UserError, print_user_error, printable

    from .heavy_imports import missing_package_message

    try:
        return call()
    except (UserError, OSError) as exc:
        if not print_user_error(exc, "edgekit"):
            raise
        return 2
    except ModuleNotFoundError as exc:
        message = missing_package_message(command, exc)
        if message is None:
            raise
        print(f"edgekit: error: {printable(message)}", file=sys.stderr)
        return 2
