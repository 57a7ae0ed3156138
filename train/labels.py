"""labels.txt: a run's class names in the model's output order, one per line (a name may hold
spaces, so the file is read by lines, never split on whitespace)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from edge_runtime.errors import UserError
from edgekit.common.atomic import write_text

LABELS_FILE = "labels.txt"


def write_labels(run_dir: Path, class_names: list[str]) -> None:
    """Write RUN_DIR/labels.txt atomically."""
    write_text(Path(run_dir) / LABELS_FILE, "".join(f"{name}\n" for name in class_names))


def read_labels(run_dir: Path) -> list[str]:
    """The class names of RUN_DIR/labels.txt."""
    return (Path(run_dir) / LABELS_FILE).read_text(encoding="utf-8").splitlines()


def check_same_classes(data: str, data_classes: Sequence[str], run_classes: Sequence[str]) -> None:
    """UserError unless the classes found in ``data`` are the run's, in the same order: an
    accuracy measured against other classes would be a number without a meaning."""
    if list(data_classes) != list(run_classes):
        raise UserError(f"classes of {data} ({', '.join(data_classes)}) differ from the "
                        f"model's ({', '.join(run_classes)})")
