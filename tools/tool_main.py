"""How a measurement tool (``python -m tools.NAME``) checks its flags and ends: a user's
error is one line and exit 2, Ctrl-C is exit 130, as for ``edgekit`` itself."""
from __future__ import annotations

import argparse
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
