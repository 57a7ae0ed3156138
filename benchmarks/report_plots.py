"""The benchmark's pictures, drawn from the report's rows alone (so they can be redrawn from
benchmark.json): latency with its spread, accuracy against size and against latency."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or CI
import matplotlib.pyplot as plt

from edge_runtime.progress_line import counted
from edgekit.train.plots import save_figure



def _label(row: dict) -> str:
    return f"{row['variant']} ({row['runtime']})"


def latency_plot(rows: list[dict], target: Path) -> None:
    """Batch-1 median latency per subject, one panel per thread count; the whisker spans the
    interquartile range of all timed calls, the dot marks p99."""
    timed = [r for r in rows if not r["error"] and "latency_median_ms" in r]
    threads = sorted({r["threads"] for r in timed})
    panels = max(len(threads), 1)
    per_panel = max(len(timed) // panels, 4)
    figure, axes = plt.subplots(panels, 1, figsize=(8, (0.35 * per_panel + 1.2) * panels),
                                squeeze=False)
    for axis, count in zip(axes[:, 0], threads):
        group = sorted((r for r in timed if r["threads"] == count),
                       key=lambda r: -r["latency_median_ms"])  # fastest at the top
        positions = range(len(group))
        medians = [r["latency_median_ms"] for r in group]
        low = [m - r["latency_p25_ms"] for m, r in zip(medians, group)]
        high = [r["latency_p75_ms"] - m for m, r in zip(medians, group)]
        colours = ["tab:gray" if r["variant"] == "keras" else "tab:blue" for r in group]
        axis.barh(positions, medians, xerr=[low, high], color=colours, capsize=3)
        axis.plot([r["latency_p99_ms"] for r in group], positions, "k.", label="p99")
        axis.set_yticks(list(positions), [_label(r) for r in group])
        axis.set_xscale("log")
        axis.set_xlabel("batch-1 latency, ms (log scale)")
        axis.set_title(counted(count, "thread"))
        axis.grid(alpha=0.3, axis="x")
        axis.legend(loc="upper right")
    save_figure(figure, target)


def _scatter(rows: list[dict], x_key: str, x_label: str, title: str, target: Path) -> None:
    figure, axis = plt.subplots(figsize=(7.5, 5))
    for index, row in enumerate(rows):
        colour = "tab:gray" if row["variant"] == "keras" else "tab:blue"
        axis.scatter(row[x_key], 100 * row["accuracy"], color=colour)
        # Staggered offsets keep the labels of coinciding points (int8 and its MediaPipe twin,
        # the float32 files) apart.
        axis.annotate(_label(row) if x_key != "bytes" else row["variant"],
                      (row[x_key], 100 * row["accuracy"]), fontsize=8,
                      textcoords="offset points", xytext=(5, 3 - 9 * (index % 5)))
    axis.set_xscale("log")
    axis.set_xlabel(x_label)
    axis.set_ylabel("test accuracy, %")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    save_figure(figure, target)


def accuracy_vs_size(rows: list[dict], target: Path) -> None:
    """One point per file and test-time augmentation (the first runtime's accuracy; runtimes
    agree on a file)."""
    seen, points = set(), []
    for row in rows:
        if not row["error"] and "accuracy" in row and (row["file"], row["variant"]) not in seen:
            seen.add((row["file"], row["variant"]))
            points.append(row)
    _scatter(points, "bytes", "file size, bytes (log scale)", "Accuracy against size", target)


def accuracy_vs_latency(rows: list[dict], target: Path) -> None:
    """One point per subject at the largest thread count."""
    timed = [r for r in rows if not r["error"] and "latency_median_ms" in r and "accuracy" in r]
    most = max((r["threads"] for r in timed), default=1)
    _scatter([r for r in timed if r["threads"] == most], "latency_median_ms",
             f"batch-1 median latency at {most} threads, ms (log scale)",
             "Accuracy against latency", target)


def draw_all(rows: list[dict], folder: Path, files: dict[str, str]) -> list[str]:
    """The pictures the rows have figures for, into ``folder`` under ``files`` (picture name ->
    file name; the report's PLOTS): latency, and accuracy against size and latency where
    accuracy was measured. Returns the names drawn."""
    drawn = ["latency"]
    latency_plot(rows, folder / files["latency"])
    if any("accuracy" in row for row in rows):
        accuracy_vs_size(rows, folder / files["accuracy_vs_size"])
        accuracy_vs_latency(rows, folder / files["accuracy_vs_latency"])
        drawn += ["accuracy_vs_size", "accuracy_vs_latency"]
    return drawn
