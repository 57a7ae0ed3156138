"""Read image-folder trees (``ROOT/<class>/*``) into uint8 arrays, with a decode cache.

Decoding 55,000 small JPEGs costs about 12 s on the 2-core CI machine; the decoded arrays are
cached under a key built from every file's path, size and mtime, the image size and the
preprocessing version, so a second run loads them in well under a second.
"""
from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from edge_runtime.errors import UserError, printable
from edge_runtime.image_paths import is_hidden, subfolders
from edge_runtime.preprocess import PREPROCESS_VERSION, decode_files, heif_readable, warn_unreadable
from edgekit.common.atomic import atomic_path
from edgekit.common.progress import progress_bar


def list_class_dirs(root: Path) -> list[Path]:
    """Class folders of ``root`` in name order; hidden folders are ignored."""
    if not root.exists():
        raise UserError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise UserError(f"data path {root} is not a folder")
    dirs = subfolders(root)
    if not dirs:
        raise UserError(f"data folder {root} has no class folders (expected {root}/<class>/*)")
    for folder in dirs:
        check_class_name(folder)
    return dirs


def check_class_name(folder: Path) -> None:
    """UserError for a class folder whose name labels.txt (one name a line) and the labels
    inside the model files cannot keep as it is: a control character such as a line break,
    a line separator, or file-system bytes that are not UTF-8. Checked before training, which
    would otherwise end in a run no later command can read."""
    name = folder.name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"class folder {printable(ascii(str(folder)))}: its name is not UTF-8 "
                        "text, which labels.txt and the model files hold: rename it") from None
    if printable(name) != name:
        raise UserError(f"class folder {printable(str(folder))}: its name holds a control "
                        "character, which labels.txt (one class a line) and the model files "
                        "cannot keep: rename it")


def list_images(class_dir: Path) -> list[Path]:
    """Every file below a class folder but hidden ones and those in hidden folders (a photo
    manager's ``.thumbnails/``, ``.ipynb_checkpoints/``), sorted; non-images fail at decode."""
    files = sorted(
        p for p in class_dir.rglob("*") if p.is_file() and not is_hidden(p, class_dir)
    )
    if not files:
        raise UserError(f"class folder {class_dir} has no images")
    return files


def _cache_key(root: Path, files: list[Path], class_names: list[str], size: int) -> str:
    digest = hashlib.sha256()
    # Whether HEIC photos can be read decides which files decode: a cache written without
    # pillow-heif must not stand in once it is installed.
    heif = "heif" if heif_readable() else "no-heif"
    digest.update(f"{root.resolve()}|{size}|v{PREPROCESS_VERSION}|{heif}|{class_names}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def read_image_tree(
    root: Path,
    size: int,
    cache_dir: Optional[Path],
    class_names: Optional[list[str]] = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode ``root/<class>/*`` into (x uint8 (N, size, size, 3), y int64 (N,), class names).

    ``class_names`` fixes the label order (the test tree must use the train tree's classes).
    Unreadable files are skipped with one warning that counts them; a class left with no
    readable image is an error.
    """
    dirs = list_class_dirs(root)
    found = [d.name for d in dirs]
    if len(found) < 2:
        # One class trains to a "100%" model that tells nothing apart.
        raise UserError(f"data folder {root} has one class folder ({found[0]}); a classifier "
                        f"needs at least two (expected {root}/<class>/*)")
    if class_names is None:
        class_names = found
    elif found != class_names:
        raise UserError(
            f"class folders of {root} ({', '.join(found)}) differ from the training classes "
            f"({', '.join(class_names)})"
        )
    per_class = [list_images(d) for d in dirs]
    files = [f for group in per_class for f in group]
    labels = np.concatenate([np.full(len(g), i, dtype=np.int64) for i, g in enumerate(per_class)])

    cache_file = None
    if cache_dir is not None:
        cache_file = cache_dir / f"images-{_cache_key(root, files, class_names, size)}.npz"
        cached = _read_cache(cache_file)
        if cached is not None:
            return cached[0], cached[1], class_names

    with progress_bar(len(files), f"decoding {root}", "img") as bar:
        x, keep, failures = decode_files(files, size, bar)
    warn_unreadable(failures, f" in {root}")
    y = labels[keep]
    empty = [class_names[c] for c in range(len(class_names)) if not np.any(y == c)]
    if empty:
        raise UserError(f"class folder(s) with no readable images in {root}: {', '.join(empty)}")

    if cache_file is not None:
        _write_cache(cache_file, x, y)
    return x, y, class_names


def _read_cache(cache_file: Path) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """The cached (x, y), or None when there is none or it cannot be read (a copy cut short,
    a full disk): the tree is then decoded again and the file rewritten, with a warning."""
    if not cache_file.exists():
        return None
    try:
        with np.load(cache_file) as cached:
            return cached["x"], cached["y"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        print(f"warning: unreadable decode cache {cache_file} ({exc}); decoding again",
              file=sys.stderr)
        return None


def _write_cache(cache_file: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Store (x, y) in ``cache_file``; a cache that cannot be written (a read-only or full
    disk) costs the next run a decode, not this run its data, so that is only a warning."""
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache_file) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, x=x, y=y)
    except OSError as exc:
        print(f"warning: could not write the decode cache in {cache_file.parent} "
              f"({exc.strerror or exc}); the next run decodes the images again",
              file=sys.stderr)


def default_cache_dir() -> Path:
    """``$EDGEKIT_CACHE`` or ``~/.cache/edgekit``."""
    return Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit"))


def check_cache_dir(path: Path) -> Path:
    """``path``, or UserError when it names a file (making the folder there would fail with
    the system's bare "File exists" after the progress bar had started)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--cache-dir {path} is a file, not a folder")
    return path
