"""Nothing half-written: files written to a temporary name beside the target, then renamed,
and folders a failed command created removed when it leaves them empty."""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (hidden, with the same suffix, which some
    writers require: Keras saves only to .keras); rename it onto ``target`` only on success."""
    target = Path(target)
    tmp = target.with_name(f".{target.stem}.tmp{os.getpid()}{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        # The temporary name means nothing to the user, and a full disk's error raised inside
        # a library's write names no file at all: the error names the file they asked for.
        if exc.filename in (str(tmp), None):
            exc.filename = str(target)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def missing(*folders: Path) -> list[Path]:
    """The ``folders`` that do not exist yet: what a command is about to create."""
    return [Path(folder) for folder in folders if not Path(folder).exists()]


@contextmanager
def removed_if_left_empty(created: list[Path]) -> Iterator[None]:
    """If the block fails (a full disk, Ctrl-C), the folders of ``created`` (``missing`` before
    the command made them) that it left empty are removed, the deepest first."""
    try:
        yield
    except BaseException:
        for folder in sorted(created, key=lambda path: len(path.parts), reverse=True):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                pass  # not created after all, or holding files: kept
        raise


def write_text(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``target`` atomically."""
    write_text(target, json.dumps(data, indent=2, sort_keys=False) + "\n")
