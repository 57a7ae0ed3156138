"""Error types shared by every stage, and the one line a user is shown for them.

They live in edge_runtime because it is the foundation every other stage may import; the CLI
prints a ``UserError`` as one line and exits non-zero instead of showing a traceback.
"""
from __future__ import annotations

import errno
from typing import Optional


class UserError(Exception):
    """A problem the user can fix (bad path, bad flag, bad file): reported as one line."""


class ImageReadError(UserError):
    """An image file could not be opened or decoded."""


def user_error_line(exc: BaseException) -> Optional[str]:
    """The one line to show for an error the user can fix, or None for a bug, which keeps its
    traceback. Besides ``UserError``: a path the system refused (a folder under a file, a
    read-only folder, no access, a missing file) and a full disk."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, OSError) and (exc.filename is not None
                                     or exc.errno in (errno.ENOSPC, errno.EDQUOT)):
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return f"{where}{exc.strerror or exc}"
    return None
