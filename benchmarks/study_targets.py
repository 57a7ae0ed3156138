"""The study's two targets, checked against its full-integer int8 rows so that STUDY.md says
plainly whether each is met and by how much:

- an int8 model on the size Pareto front at MLPerf Tiny's accuracy (86.1%) within 100 KB,
  trained on a CPU in under an hour or on a GPU;
- seed_cnn at width 1, trained with the default recipe, at 85% int8 test accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass

from edge_runtime.progress_line import counted

SIZE_LIMIT_BYTES = 100_000
TINY_TARGET_ACCURACY = 0.861     # MLPerf Tiny ResNet-8, int8
SEED_CNN_TARGET_ACCURACY = 0.85
CPU_TRAINING_LIMIT_MINUTES = 60


@dataclass(frozen=True)
class TargetCheck:
    """One target: what it asks, whether the study meets it, and the evidence."""

    target: str
    met: bool
    evidence: str


def on_gpu(devices: str) -> bool:
    """Whether a run's devices (``"gpu:0, cpu:0"``) include a GPU."""
    devices = (devices or "").lower()
    return "gpu" in devices or "cuda" in devices


def point_name(row: dict) -> str:
    """A study row's name in fronts and verdicts: its cell, and its variant unless plain int8."""
    variant = row.get("variant", "int8")
    return row["cell"] if variant == "int8" else f"{row['cell']} ({variant})"


def _describe(row: dict) -> str:
    # A run started from another (--init-from) may have trained on both.
    if not on_gpu(row.get("trained_on")):
        where = "CPU"
    elif row["cpu_train_minutes"]:
        where = f"a GPU and CPU, {row['cpu_train_minutes']:.1f} min of it on the CPU"
    else:
        where = "a GPU"
    return (f"{point_name(row)}: {100 * row['accuracy']:.2f}% int8, {row['bytes']:,} bytes, "
            f"{counted(row['epochs'], 'epoch')} in {row['train_minutes']:.1f} min on {where}")


def check_tiny_target(size_front: list[dict]) -> TargetCheck:
    """The best int8 model within SIZE_LIMIT_BYTES on the size Pareto front against 86.1%."""
    target = (f"int8 >= {100 * TINY_TARGET_ACCURACY:.1f}% within {SIZE_LIMIT_BYTES:,} bytes "
              f"(trained on a GPU, or on a CPU in under {CPU_TRAINING_LIMIT_MINUTES} min)")
    small = [r for r in size_front if r["bytes"] <= SIZE_LIMIT_BYTES]
    if not small:
        return TargetCheck(target, False, "no int8 model of the study is that small")
    best = max(small, key=lambda r: r["accuracy"])
    # GPU time is not limited; a run continued on the CPU (--init-from) counts its CPU minutes
    in_time = best["cpu_train_minutes"] < CPU_TRAINING_LIMIT_MINUTES
    met = best["accuracy"] >= TINY_TARGET_ACCURACY and in_time
    return TargetCheck(target, met, "best: " + _describe(best))


def check_seed_cnn_target(int8_rows: list[dict]) -> TargetCheck:
    """seed_cnn at width 1 with the default recipe against 85%, by its best int8 file."""
    target = f"seed_cnn, width 1, default recipe: int8 >= {100 * SEED_CNN_TARGET_ACCURACY:.0f}%"
    cells = [r for r in int8_rows if r["arch"] == "seed_cnn" and r["width"] == 1.0]
    if not cells:
        return TargetCheck(target, False, "the study has no seed_cnn cell at width 1")
    row = max(cells, key=lambda r: r["accuracy"])
    if not row["default_recipe"]:
        return TargetCheck(target, False, _describe(row) + ", but not with the default recipe "
                           "(the study overrode some of its settings)")
    return TargetCheck(target, row["accuracy"] >= SEED_CNN_TARGET_ACCURACY, _describe(row))
