"""Accuracy through ``edgekit classify --json`` on a test folder, against the accuracy the
benchmark measured for the same files (RUN_DIR/report/benchmark.json, written by
``edgekit bench``): the same preprocessing end to end gives the same number.

    python -m benchmarks.classify_accuracy RUN_DIR TEST_FOLDER [--variants int8,float32]

Each variant's file is classified by the real command in a child process; an image's true
class is its folder's name.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def classify_accuracy(model: Path, folder: Path) -> tuple[float, int]:
    """(accuracy, images) of ``edgekit classify --json`` over a class-folder tree."""
    result = subprocess.run([sys.executable, "-m", "edgekit.cli", "classify", str(model),
                             str(folder), "--json", "--top-k", "1"],
                            capture_output=True, text=True, check=True)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    correct = sum(Path(r["path"]).parent.name == r.get("label") for r in records)
    return correct / len(records), len(records)


def main(argv=None) -> int:
    """Print one row per variant: classify accuracy, benchmark accuracy, equal or not."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a benchmarked run (report/benchmark.json)")
    parser.add_argument("test_folder", type=Path, help="class folders of test images")
    parser.add_argument("--variants", default=None, help="comma-separated (default: all)")
    args = parser.parse_args(argv)
    manifest = json.loads((args.run_dir / "artifacts" / "manifest.json").read_text())
    measured = {}  # each variant's first runtime: the one edgekit classify picks by default
    for row in json.loads((args.run_dir / "report" / "benchmark.json").read_text())["rows"]:
        if row.get("accuracy") is not None:
            measured.setdefault(row["variant"], row["accuracy"])
    wanted = args.variants.split(",") if args.variants else [v["name"] for v in
                                                             manifest["variants"]]
    print("| variant | edgekit classify --json | edgekit bench | equal |")
    print("|---|---|---|---|")
    all_equal = True
    for variant in manifest["variants"]:
        if variant["name"] not in wanted or "error" in variant:
            continue
        accuracy, images = classify_accuracy(args.run_dir / "artifacts" / variant["file"],
                                             args.test_folder)
        reference = measured[variant["name"]]
        equal = abs(accuracy - reference) < 0.5 / images
        all_equal &= equal
        print(f"| {variant['name']} | {accuracy:.4f} ({images} images) | {reference:.4f} | "
              f"{'yes' if equal else 'NO'} |")
    return 0 if all_equal else 1


if __name__ == "__main__":
    sys.exit(main())
