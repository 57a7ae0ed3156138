"""The command line a stage writes into its files (config.json, manifest.json, the reports), so
that pasted into a shell in the folder it ran in, it runs again."""
from __future__ import annotations

import shlex
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Optional

# The command line a chain of stages records instead of its own (a study's cell records the
# pipeline command that repeats it); unset, this process's argv decides.
_RECORDED: ContextVar[Optional[str]] = ContextVar("recorded_command_line", default=None)


@contextmanager
def recorded_as(command_line: Optional[str]) -> Iterator[None]:
    """Within it, every stage records ``command_line`` (when not None) as its command."""
    token = _RECORDED.set(command_line)
    try:
        yield
    finally:
        _RECORDED.reset(token)


def edgekit_command_line(subcommand: str, fallback: str) -> str:
    """``edgekit SUBCOMMAND ...`` as this process was started, when it was started as
    ``subcommand`` or as the pipeline that runs it; else ``fallback`` (called from Python).

    Not ``sys.argv`` as it is: the console script's argv[0] is the absolute path of one Python
    installation. Within ``recorded_as`` (a study's cell, run from its settings in a child
    process), the command line given there."""
    if _RECORDED.get() is not None:
        return _RECORDED.get()
    # The pipeline runs its stages in its own process: their files name the pipeline's command
    # line, which repeats them with every flag they were passed.
    if sys.argv[1:2] and sys.argv[1] in (subcommand, "pipeline"):
        return shlex.join(["edgekit", *sys.argv[1:]])
    return fallback
