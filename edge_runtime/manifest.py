"""What the runtime reads from the conversion stage's manifest.json when it sits beside a model
file: the file's expected sha256 (integrity check) and, for files without metadata, labels and
input normalization."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from .errors import UserError
from .model_metadata import ModelInfo

MANIFEST_NAME = "manifest.json"


class IntegrityError(UserError):
    """A model file whose sha256 differs from the one its manifest recorded."""


def manifest_entry(model_path: Path) -> tuple[Optional[dict], Optional[dict]]:
    """(manifest, this file's variant entry) from manifest.json beside the model; (None, None)
    without a manifest, (manifest, None) when the manifest does not list this file."""
    manifest_path = model_path.parent / MANIFEST_NAME
    if not manifest_path.is_file():
        return None, None
    try:
        manifest = json.loads(manifest_path.read_text())
        variants = manifest["variants"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{manifest_path}: unreadable manifest ({exc}); fix or remove it") \
            from None
    for entry in variants:
        if isinstance(entry, dict) and entry.get("file") == model_path.name:
            return manifest, entry
    return manifest, None


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(model_path: Path, data: bytes, entry: dict) -> None:
    """Refuse a file whose bytes are not the ones the conversion stage wrote and verified."""
    expected = entry.get("sha256")
    if not expected:
        return
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise IntegrityError(
            f"{model_path}: sha256 {actual[:12]}... does not match {MANIFEST_NAME} "
            f"({expected[:12]}...): the file changed after conversion; copy it again "
            f"(or move {MANIFEST_NAME} away to skip the check)")


def info_from_manifest(manifest: dict, entry: dict, name: str) -> ModelInfo:
    """Labels and normalization recorded for a variant (the fallback for bare files)."""
    try:
        normalization = entry.get("input_normalization") or {}
        model_input = manifest.get("input", {})
        return ModelInfo(list(manifest["labels"]),
                         float(normalization.get("mean", model_input["norm_mean"])),
                         float(normalization.get("std", model_input["norm_std"])),
                         model_input.get("image_size"))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{name}: {MANIFEST_NAME} lacks labels or normalization ({exc})") \
            from None
