"""Progress bars for long loops that stay quiet in logs (a line every 30 s off a terminal)."""
from __future__ import annotations

import sys
from typing import Optional

from tqdm import tqdm


def progress_bar(total: Optional[int], description: str, unit: str) -> tqdm:
    """A tqdm bar on stderr to ``update`` by hand; off a terminal it refreshes every 30 s."""
    # tqdm's default (10 refreshes a second) floods a log file or a study's cell logs with
    # carriage-returned lines; on a terminal the bar stays once done, in a log it does not.
    interactive = sys.stderr.isatty()
    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr,
                mininterval=0.2 if interactive else 30.0, leave=interactive)
