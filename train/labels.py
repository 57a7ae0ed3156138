"""labels.txt: a run's class names in the model's output order, one per line (a name may hold
spaces, so the file is read by lines, never split on whitespace)."""
from __future__ import annotations

from pathlib import Path

from .atomic import write_text

LABELS_FILE = "labels.txt"


def write_labels(run_dir: Path, class_names: list[str]) -> None:
    """Write RUN_DIR/labels.txt atomically."""
    write_text(Path(run_dir) / LABELS_FILE, "".join(f"{name}\n" for name in class_names))


def read_labels(run_dir: Path) -> list[str]:
    """The class names of RUN_DIR/labels.txt."""
    return (Path(run_dir) / LABELS_FILE).read_text(encoding="utf-8").splitlines()
