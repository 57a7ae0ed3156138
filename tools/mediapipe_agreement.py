"""Top-1 agreement between MediaPipe's ImageClassifier and edge_runtime on the same .tflite.

    python -m tools.mediapipe_agreement RUN_DIR --mediapipe-python PATH [--images DIR]

MediaPipe decodes each file itself; edge_runtime decodes it with Pillow and feeds the raw
pixels the file's metadata asks for. Prints and saves RUN_DIR/report/mediapipe_agreement.json.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from edge_runtime.errors import UserError
from edgekit.common.child_process import child_output
from edgekit.train.finished_run import check_finished_run

from .tool_main import run_tool

CLIENT = Path(__file__).with_name("mediapipe_client.py")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def main(argv=None) -> int:
    """Classify every image under --images with both clients and compare their top-1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a converted run directory")
    parser.add_argument("--mediapipe-python", required=True, help="a Python with mediapipe")
    parser.add_argument("--images", type=Path, default=None,
                        help="image folder (default: the run's data test/ folder)")
    args = parser.parse_args(argv)
    check_finished_run(args.run_dir)

    from edge_runtime.interpreters import load_model
    from edge_runtime.model_metadata import read_tflite_info
    from edge_runtime.preprocess import load_pixels, scale_pixels
    from edgekit.common.atomic import write_json

    model_file = args.run_dir / "artifacts" / "model_int8-mediapipe.tflite"
    if not model_file.is_file():
        raise UserError(f"{model_file}: no such file: run edgekit convert {args.run_dir} "
                        f"--variants int8-mediapipe first")
    info = read_tflite_info(model_file.read_bytes(), model_file.name)
    config = json.loads((args.run_dir / "config.json").read_text())["settings"]
    folder = args.images or Path(config["data"]) / "test"
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise UserError(f"no image files in {folder}")
    model = load_model(model_file)
    ours = []
    for start in range(0, len(paths), 500):
        pixels = np.stack([load_pixels(p, info.image_size) for p in paths[start:start + 500]])
        ours.append(model.predict(scale_pixels(pixels, info.norm_mean, info.norm_std)).argmax(1))
    ours = np.concatenate(ours)
    output = child_output([args.mediapipe_python, str(CLIENT), str(model_file),
                           *map(str, paths)], "MediaPipe's classifier")
    theirs = json.loads(output.strip().splitlines()[-1])
    same_label = [info.labels[i] == name for i, (name, _) in zip(ours, theirs)]
    truth = [p.parent.name for p in paths]
    result = {
        "command": "python -m tools.mediapipe_agreement " + shlex.join(sys.argv[1:]),
        "images": len(paths),
        "top1_agreement": float(np.mean(same_label)),
        "edge_runtime_accuracy": float(np.mean([info.labels[i] == t for i, t in zip(ours, truth)])),
        "mediapipe_accuracy": float(np.mean([name == t for (name, _), t in zip(theirs, truth)])),
    }
    (args.run_dir / "report").mkdir(exist_ok=True)
    write_json(args.run_dir / "report" / "mediapipe_agreement.json", result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
