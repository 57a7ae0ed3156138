"""The flags that fill a stage's settings dataclass. Each defaults to None, "not given": the
dataclass holds the default (which --help shows), so the same flags can be laid over the
settings a run's files record, and only those typed are compared (train --resume, the
pipeline)."""
from __future__ import annotations

import argparse
from typing import Any


def add_setting(parser, flag: str, help: str, default: Any = None,
                **options) -> argparse.Action:
    """Register ``flag`` on ``parser`` (or an argument group) as not given unless typed;
    ``default`` is the settings' own, shown in the help. Returns its action."""
    shown = f"{help} (default: {default})" if default is not None else help
    return parser.add_argument(flag, default=None, help=shown, **options)
