"""Run directories carried between machines as one archive and its sha256.

A Ray worker that does not share the study's filesystem trains a cell in a folder of its own
and sends the cell back this way (and gets an interrupted cell's RUN_DIR.partial the same way);
the receiving side unpacks only an archive whose digest matches, into a temporary folder first,
so a damaged transfer leaves the study's folders as they were.
"""
from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from edge_runtime.errors import UserError


def pack_folders(root: Path, names: list[str]) -> tuple[bytes, str]:
    """A gzip'd tar of ``root/name`` for each of ``names`` that exists, and its sha256."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in names:
            if (root / name).is_dir():
                archive.add(root / name, arcname=name)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def unpack_folders(data: bytes, sha256: str, root: Path, names: list[str], sender: str) -> None:
    """Make ``root/name`` for each of ``names`` what the archive holds: replaced by the
    archive's folder of that name, or removed when the archive has none (a training that
    finished on the worker no longer has its RUN_DIR.partial). UserError, with nothing
    changed, when ``data`` does not hash to ``sha256`` or holds anything outside those
    folders; ``sender`` names where it came from."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise UserError(f"the run directory sent by {sender} failed its sha256 check (got "
                        f"{digest[:12]}..., sent as {sha256[:12]}...): not unpacked")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".incoming-", dir=root) as incoming:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive.getmembers():
                parts = PurePosixPath(member.name).parts
                if not parts or parts[0] not in names or ".." in parts or \
                        member.name.startswith("/") or not (member.isfile() or member.isdir()):
                    raise UserError(f"the run directory sent by {sender} holds {member.name!r}, "
                                    f"outside {', '.join(names)}: not unpacked")
            archive.extractall(incoming, **_data_filter())
        for name in names:
            _remove(root / name)
            if (Path(incoming) / name).is_dir():
                (Path(incoming) / name).rename(root / name)


def _data_filter() -> dict:
    """tarfile's "data" extraction filter where this Python has it (3.10.12 on): the members
    are checked above either way."""
    return {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
