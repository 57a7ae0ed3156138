"""Accuracy through ``edgekit classify --json`` on a test folder, against the accuracy the
benchmark measured for the same files (RUN_DIR/report/benchmark.json, written by
``edgekit bench``): the same preprocessing end to end gives the same number.

    python -m tools.classify_accuracy RUN_DIR TEST_FOLDER [--variants int8,float32]

Each variant's file is classified by the real command in a child process; an image's true
class is its folder's name.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_runtime.errors import UserError
from edge_runtime.manifest import variant_file
from edgekit.common.child_process import child_output, edgekit_command
from edgekit.train.finished_run import check_finished_run

from .tool_main import run_tool


def classify_accuracy(model: Path, folder: Path) -> tuple[float, int]:
    """(accuracy, images) of ``edgekit classify --json`` over a class-folder tree."""
    output = child_output(edgekit_command("classify", str(model), str(folder), "--json",
                                          "--top-k", "1"),
                          f"edgekit classify {model.name}")
    records = [json.loads(line) for line in output.splitlines()]
    correct = sum(Path(r["path"]).parent.name == r.get("label") for r in records)
    return correct / len(records), len(records)


def _written_by(path: Path, command: str) -> dict:
    """A JSON file ``edgekit COMMAND RUN_DIR`` writes; UserError naming that command if absent."""
    if not path.is_file():
        raise UserError(f"{path}: no such file: run edgekit {command} on the run first")
    return json.loads(path.read_text())


def main(argv=None) -> int:
    """Print one row per variant: classify accuracy, benchmark accuracy, equal or not."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a benchmarked run (report/benchmark.json)")
    parser.add_argument("test_folder", type=Path, help="class folders of test images")
    parser.add_argument("--variants", default=None, help="comma-separated (default: all)")
    args = parser.parse_args(argv)
    check_finished_run(args.run_dir)
    if not args.test_folder.is_dir():
        raise UserError(f"{args.test_folder}: no such folder")
    manifest = _written_by(args.run_dir / "artifacts" / "manifest.json", "convert")
    measured = {}  # each variant's first runtime: the one edgekit classify picks by default
    for row in _written_by(args.run_dir / "report" / "benchmark.json", "bench")["rows"]:
        if row.get("accuracy") is not None:
            measured.setdefault(row["variant"], row["accuracy"])
    wanted = (args.variants.split(",") if args.variants
              else [v["name"] for v in manifest["variants"] if v["name"] in measured])
    unknown = [name for name in wanted if name not in measured]
    if unknown:
        raise UserError(f"no accuracy of {', '.join(unknown)} in the benchmark report; "
                        f"measured: {', '.join(measured) or 'none'}")
    print("| variant | edgekit classify --json | edgekit bench | equal |")
    print("|---|---|---|---|")
    all_equal = True
    for variant in manifest["variants"]:
        if variant["name"] not in wanted:
            continue
        accuracy, images = classify_accuracy(variant_file(args.run_dir / "artifacts", variant),
                                             args.test_folder)
        reference = measured[variant["name"]]
        equal = abs(accuracy - reference) < 0.5 / images
        all_equal &= equal
        print(f"| {variant['name']} | {accuracy:.4f} ({images} images) | {reference:.4f} | "
              f"{'yes' if equal else 'NO'} |")
    return 0 if all_equal else 1


if __name__ == "__main__":
    sys.exit(run_tool(main))
