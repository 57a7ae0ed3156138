"""How a measurement tool (``python -m benchmarks.NAME``) checks its flags and ends: a user's
error is one line and exit 2, Ctrl-C is exit 130, as for ``edgekit`` itself."""
from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Callable, Optional, Sequence

from edge_runtime.errors import UserError, check_counts, print_user_error


def run_tool(main: Callable[[Optional[Sequence[str]]], int],
             argv: Optional[Sequence[str]] = None) -> int:
    """``main(argv)``'s exit status, with the errors a user can fix printed as one line."""
    spec = main.__globals__.get("__spec__")  # under ``python -m``, __module__ is "__main__"
    name = (spec.name if spec else main.__module__).rsplit(".", 1)[-1]
    try:
        return main(argv)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except (UserError, OSError) as exc:
        if not print_user_error(exc, name):
            raise
        return 2


def check_positive_counts(args: argparse.Namespace, *names: str) -> None:
    """UserError naming the flag when one of the integer flags ``names`` (argparse's
    attribute names) is below 1."""
    check_counts(*((f"--{name.replace('_', '-')}", getattr(args, name)) for name in names))


def module_command(python: str, module: str, *arguments: str) -> list[str]:
    """The command line that runs ``MODULE.main()`` in ``python`` as a child process, with
    ``ARGUMENTS`` as its sys.argv[1:]. Not ``python -m MODULE``: that puts the working folder
    first on sys.path, where a user's own train.py or benchmarks/ (common names) shadows
    ours and the child dies on import. The -c code drops that entry (what -P does from Python
    3.11 on), so children start in the user's folder and take paths relative to it."""
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
