"""The command line a stage writes into its files (config.json, manifest.json, the reports), so
that pasted into a shell in the folder it ran in, it runs again."""
from __future__ import annotations

import shlex
import sys


def edgekit_command_line(subcommand: str, fallback: str) -> str:
    """``edgekit SUBCOMMAND ...`` as this process was started, when it was started as
    ``subcommand`` or as the pipeline that runs it; else ``fallback`` (called from Python).

    Not ``sys.argv`` as it is: the console script's argv[0] is the absolute path of one Python
    installation, and a study's cells run as ``python -c CODE pipeline ...``, whose argv[0] is
    ``-c``, a command no shell runs."""
    # The pipeline runs its stages in its own process: their files name the pipeline's command
    # line, which repeats them with every flag they were passed.
    if sys.argv[1:2] and sys.argv[1] in (subcommand, "pipeline"):
        return shlex.join(["edgekit", *sys.argv[1:]])
    return fallback
