"""Child processes of ours: the command line that runs one of our modules (or ``edgekit``) in a
Python, and a child's output with its failure as one line."""
from __future__ import annotations

import subprocess
import sys
from typing import Sequence

from edge_runtime.errors import UserError


def module_command(python: str, module: str, *arguments: str) -> list[str]:
    """The command line that runs ``MODULE.main()`` in ``python`` as a child process, with
    ``ARGUMENTS`` as its sys.argv[1:]. Not ``python -m MODULE``: that puts the working folder
    first on sys.path, where a folder of the user's named like one of our packages (a
    checkout of this repository, say) shadows the installed one and the child dies on import.
    The -c code drops that entry (what -P does from Python 3.11 on), so children start in the
    user's folder and take paths relative to it."""
    return [python, "-c",
            f"import sys; del sys.path[0]; from {module} import main; sys.exit(main())",
            *arguments]


def edgekit_command(*arguments: str) -> list[str]:
    """The command line that runs ``edgekit ARGUMENTS`` in this Python as a child process."""
    return module_command(sys.executable, "edgekit.cli", *arguments)


def child_output(command: Sequence[str], what: str) -> str:
    """The standard output of ``command``; UserError with its last error line if it fails."""
    result = subprocess.run(list(command), capture_output=True, text=True)
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"{what} failed (exit {result.returncode}): {said}")
    return result.stdout
