"""What the runtime reads from the conversion stage's manifest.json when it sits beside a model
file: the file's expected sha256 (integrity check) and, for files without metadata, labels and
input normalization."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from .errors import UserError, damage_reason
from .model_metadata import ModelInfo

MANIFEST_NAME = "manifest.json"


class IntegrityError(UserError):
    """A model file whose sha256 differs from the one its manifest recorded."""


def read_manifest(path: Path) -> dict:
    """A manifest.json, checked to list its variants as the conversion stage writes them (each
    with a name and a file); UserError in one line naming the file otherwise."""
    try:
        manifest = json.loads(path.read_text())
        variants = manifest["variants"]
        if not (isinstance(variants, list) and all(
                isinstance(entry, dict) and isinstance(entry.get("name"), str)
                and isinstance(entry.get("file"), str) for entry in variants)):
            raise ValueError("its variants are not a list of entries with a name and a file")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: unreadable manifest ({damage_reason(exc)}); fix or remove "
                        "it") from None
    return manifest


def manifest_entry(model_path: Path) -> tuple[Optional[dict], Optional[dict]]:
    """(manifest, this file's variant entry) from manifest.json beside the model; (None, None)
    without a manifest, (manifest, None) when the manifest does not list this file."""
    manifest_path = model_path.parent / MANIFEST_NAME
    if not manifest_path.is_file():
        return None, None
    manifest = read_manifest(manifest_path)
    for entry in manifest["variants"]:
        if entry["file"] == model_path.name:
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
