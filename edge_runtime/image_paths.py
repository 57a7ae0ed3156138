"""Turn command-line PATH arguments (files, folders, glob patterns) into image files."""
from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

# Folders are searched for these; a file named explicitly is tried whatever its extension.
# .jfif and .jpe: JPEGs as browsers save them on Windows; .heic/.heif: an iPhone's photos
# (with pillow-heif); .avif and .jp2 when Pillow was built with their codecs, as it is here.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif",
                              ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".heic", ".heif",
                              ".avif", ".jp2"})


# Folder names of an image-folder tree that stand for splits, not classes (in any case: Kaggle's
# sets spell them Train/, Testing/). The held-out names in the order one serves as the test
# set: a validation folder stands in for a missing test folder (it is held out all the same).
TRAIN_FOLDERS = ("train", "training")
TEST_FOLDERS = ("test", "testing")
HELD_OUT_FOLDERS = TEST_FOLDERS + ("val", "valid", "validation")


def is_hidden(path: Path, root: Path) -> bool:
    """Whether ``path`` or a folder between ``root`` and it is hidden (its name starts with
    a dot: ``.DS_Store``, ``._photo.jpg``, ``.thumbnails/``)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def subfolders(folder: Path) -> list[Path]:
    """The folders in ``folder`` in name order, hidden ones left out: the class (or split)
    folders of an image-folder tree."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def expand_image_paths(arguments: Sequence[str]) -> Iterator[Path]:
    """Each argument in order: a file as itself, a folder as its images (recursively, sorted,
    hidden files and folders left out: macOS's ``._photo.jpg`` twins are not photos), a glob
    pattern (``*``, ``?``, ``[``, ``**``) as its matches. A missing path or a pattern matching
    nothing is passed through as-is, so the caller reports it as a per-file error and keeps
    going."""
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                              and p.is_file() and not is_hidden(p, path))
        elif path.exists() or not glob.has_magic(argument):
            yield path
        else:
            matches = sorted(glob.glob(os.path.expanduser(argument), recursive=True))
            if not matches:
                yield path
            for match in matches:
                yield from expand_image_paths([match]) if Path(match).is_dir() else [Path(match)]
