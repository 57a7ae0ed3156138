"""The command line a stage writes into its files (config.json, manifest.json, the reports), so
that pasted into a shell in the folder it ran in, it runs again."""
from __future__ import annotations

import shlex
import sys
from typing import Collection


def edgekit_command_line(subcommands: Collection[str], fallback: str) -> str:
    """``edgekit SUBCOMMAND ...`` as this process was started, when its subcommand is one of
    ``subcommands``; else ``fallback`` (called from Python, or by another subcommand).

    Not ``sys.argv`` as it is: the console script's argv[0] is the absolute path of one Python
    installation, and a study's cells run as ``python -c CODE pipeline ...``, whose argv[0] is
    ``-c``, a command no shell runs."""
    if sys.argv[1:2] and sys.argv[1] in subcommands:
        return shlex.join(["edgekit", *sys.argv[1:]])
    return fallback
