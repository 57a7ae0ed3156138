"""Test-set accuracy of every artifact in a run's manifest against the Keras model.

    python -m benchmarks.accuracy RUN_DIR [--data PATH]

Each artifact runs through edge_runtime with the input normalization its manifest entry states;
the table gives test accuracy, its difference from Keras, and top-1 agreement with Keras.
Results go to RUN_DIR/report/accuracy.json and are printed as a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    """Evaluate Keras and every manifest artifact on the run's test split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a converted run directory")
    parser.add_argument("--data", default=None, help="where the run's data is now, if it moved")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import keras

    from convert.verify import predict_file
    from edge_runtime.preprocess import scale_pixels
    from train.atomic import write_json
    from train.run import run_splits

    run_dir = args.run_dir
    settings = json.loads((run_dir / "config.json").read_text())["settings"]
    test = run_splits(settings, args.data)[1].test
    manifest = json.loads((run_dir / "artifacts" / "manifest.json").read_text())
    model = keras.saving.load_model(run_dir / "model.keras")
    reference = np.asarray(model.predict(scale_pixels(test.x), batch_size=500, verbose=0))
    keras_accuracy = float(np.mean(reference.argmax(1) == test.y))
    rows = [{"name": "keras", "accuracy": keras_accuracy, "delta_points": 0.0,
             "agreement": 1.0, "bytes": (run_dir / "model.keras").stat().st_size}]
    for variant in manifest["variants"]:
        if "error" in variant:
            rows.append({"name": variant["name"], "error": variant["error"]})
            continue
        norm = variant["input_normalization"]
        probabilities, _ = predict_file(run_dir / "artifacts" / variant["file"],
                                        scale_pixels(test.x, norm["mean"], norm["std"]))
        accuracy = float(np.mean(probabilities.argmax(1) == test.y))
        rows.append({"name": variant["name"], "accuracy": accuracy,
                     "delta_points": round(100 * (accuracy - keras_accuracy), 2),
                     "agreement": float(np.mean(probabilities.argmax(1) == reference.argmax(1))),
                     "bytes": variant["bytes"]})
    result = {"command": "python -m benchmarks.accuracy " + " ".join(sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "test_images": int(len(test.y)), "rows": rows}
    (run_dir / "report").mkdir(exist_ok=True)
    write_json(run_dir / "report" / "accuracy.json", result)
    print("| variant | test accuracy | vs Keras (points) | top-1 agreement | bytes |")
    print("|---|---|---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['name']} | failed: {row['error']} | | | |")
        else:
            print(f"| {row['name']} | {row['accuracy']:.4f} | {row['delta_points']:+.2f} | "
                  f"{row['agreement']:.4f} | {row['bytes']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
