"""What Ray costs a study: the same tiny study's wall time under ``--executor ray`` against
``--executor local``, on this machine.

Each round runs the study twice in fresh folders (and fresh decode caches), once per
executor, the order swapped every round so that the machine's drift falls on both alike:
local with ``--jobs`` as many as the machine's cores, Ray with a local instance of its own and
one CPU per cell (as many cells at once). The cells are made on tiny data of noisy solid
colours written here (3 classes, 12 images each for training). Prints each round's seconds
and ray/local ratio, and the median ratio; also writes them to --out.

    python -m tools.study_executors --rounds 2
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgekit.common.child_process import edgekit_command
from edgekit.common.tiny_data import write_class_tree

from .tool_main import check_positive_counts, run_tool

GRID = ('archs = ["seed_cnn", "ds_cnn"]\nwidths = [0.25, 0.5]\nvariants = "float32,int8"\n'
        '[train]\nepochs = 2\nbatch-size = 8\nval-fraction = 0.25\n')


def timed_study(folder: Path, data: Path, grid: Path, executor: str) -> float:
    """Seconds one ``edgekit study`` of ``grid`` takes under ``executor``; RuntimeError with
    the end of its output when it fails."""
    cores = len(os.sched_getaffinity(0))
    flags = ["--jobs", str(cores)] if executor == "local" else ["--executor", "ray"]
    command = edgekit_command("study", "--data", str(data), "--out", str(folder / "study"),
                              "--grid", str(grid), "--threads", "1", "--bench-rounds", "1",
                              *flags)
    environment = dict(os.environ, EDGEKIT_CACHE=str(folder / "cache"), TF_CPP_MIN_LOG_LEVEL="3")
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"the {executor} study failed (exit {result.returncode}): "
                           f"{(result.stdout + result.stderr)[-2000:]}")
    return seconds


def main(argv=None) -> int:
    """Run the rounds and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="studies per executor")
    parser.add_argument("--out", type=Path, default=Path("study_executors.txt"),
                        help="where the figures are also written")
    args = parser.parse_args(argv)
    check_positive_counts(args, "rounds")
    lines = [f"{platform.node()}, {len(os.sched_getaffinity(0))} usable cores, Python "
             f"{platform.python_version()}; 4-cell tiny study (seed_cnn and ds_cnn at widths "
             "0.25 and 0.5, 2 epochs, float32 and int8 files)"]
    print(lines[0], flush=True)
    ratios = []
    with tempfile.TemporaryDirectory(prefix="edgekit-executors-") as scratch:
        root = Path(scratch)
        write_class_tree(root / "data" / "train", 12, seed=1)
        write_class_tree(root / "data" / "test", 4, seed=2)
        (root / "grid.toml").write_text(GRID)
        for round_number in range(args.rounds):
            order = ("local", "ray") if round_number % 2 == 0 else ("ray", "local")
            seconds = {executor: timed_study(root / f"{executor}-{round_number}", root / "data",
                                             root / "grid.toml", executor)
                       for executor in order}
            ratios.append(seconds["ray"] / seconds["local"])
            lines.append(f"round {round_number + 1} ({' then '.join(order)}): local "
                         f"{seconds['local']:.1f} s, ray {seconds['ray']:.1f} s, ray/local "
                         f"{ratios[-1]:.3f}")
            print(lines[-1], flush=True)
    lines.append(f"median ray/local over {args.rounds} round(s): {statistics.median(ratios):.3f}")
    print(lines[-1])
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
