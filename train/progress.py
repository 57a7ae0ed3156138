"""A progress bar for long loops that stays quiet in logs (one line when not on a terminal)."""
from __future__ import annotations

import sys
from typing import Iterable, Iterator, Optional, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], description: str, total: Optional[int] = None) -> Iterator[T]:
    """Iterate over ``items`` with a tqdm bar on stderr (refreshing rarely off a terminal)."""
    interactive = sys.stderr.isatty()
    return iter(
        tqdm(
            items,
            desc=description,
            total=total,
            file=sys.stderr,
            mininterval=0.2 if interactive else 30.0,
            leave=interactive,
            unit="img",
        )
    )
