"""What the runtime reads from the conversion stage's manifest.json when it sits beside a model
file: the file's expected sha256 (integrity check) and, for files without metadata, labels and
input normalization."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Optional

from .errors import UserError, damage_reason, printable
from .model_metadata import ModelInfo

MANIFEST_NAME = "manifest.json"


class IntegrityError(UserError):
    """A model file whose sha256 differs from the one its manifest recorded."""


# The entry fields whose values are text when present (the conversion stage writes them so);
# commands use them as keys and in messages.
TEXT_FIELDS = ("format", "precision", "sha256")


def read_manifest(path: Path) -> dict:
    """A manifest.json, checked to be shaped as the conversion stage writes it (variants, each
    with a name and a file, their format, precision and sha256 text; the source model's
    record a table); UserError in one line naming the file otherwise."""
    try:
        manifest = json.loads(path.read_text())
        variants = manifest["variants"]
        if not (isinstance(variants, list) and all(
                isinstance(entry, dict) and isinstance(entry.get("name"), str)
                and isinstance(entry.get("file"), str) for entry in variants)):
            raise ValueError("its variants are not a list of entries with a name and a file")
        for entry in variants:
            wrong = [key for key in TEXT_FIELDS if not isinstance(entry.get(key, ""), str)]
            if wrong:
                raise ValueError(f"the {wrong[0]} of {entry['name']!r} is not text")
        if not isinstance(manifest.get("source_model", {}), dict):
            raise ValueError("its source_model is not a table")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{printable(str(path))}: unreadable manifest ({damage_reason(exc)}); "
                        "fix or remove it") from None
    return manifest


def variant_file(folder: Path, entry: dict) -> Path:
    """The file a manifest entry names, in ``folder`` (the manifest's own); UserError naming
    the entry when the name leads out of it: an absolute path, folders or ``..`` in it, or a
    symbolic link to a file elsewhere. The conversion stage writes bare file names, so any
    other is a manifest edited by hand, or made to have a command read other files."""
    name = entry["file"]
    path = Path(folder) / name
    if not name or Path(name).name != name or name in (".", ".."):
        raise UserError(f"manifest entry {entry['name']!r} names {name!r}, not a file in "
                        f"{folder}: refused")
    if path.is_symlink() and Path(folder).resolve() not in path.resolve().parents:
        raise UserError(f"manifest entry {entry['name']!r}: {path} links outside {folder}: "
                        "refused")
    return path


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


def check_sha256(model_path: Path, data: bytes, entry: dict, required: bool = True) -> None:
    """Refuse a file whose bytes are not the ones the conversion stage wrote and verified, and
    one whose entry records no sha256 to check it by unless ``required`` is False (then a
    warning says it runs unchecked)."""
    expected = entry.get("sha256")
    if not expected:
        if required:
            raise IntegrityError(
                f"{model_path}: {MANIFEST_NAME} lists it without a sha256, so it cannot be "
                "checked: convert it again, or pass --no-verify to run it unchecked")
        print(f"warning: {printable(str(model_path))}: not checked ({MANIFEST_NAME} lists it "
              "without a sha256)", file=sys.stderr)
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
