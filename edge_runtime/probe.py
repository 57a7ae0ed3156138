"""Whether model files load and run on this Python's runtime: what `edgekit check` runs inside
each target environment (a Pi's emulated Python, tflite-runtime's numpy<2 environment, ...).

    python3 -m edge_runtime.probe --runtime ai-edge-litert FILE [FILE ...]

prints one JSON line per file: the runtime's version and the machine, whether the file loaded
and ran, its probabilities for a fixed set of seeded random images (so that the caller can
compare platforms), and for TFLite which operators the XNNPACK delegate took. It needs only
numpy and the runtime, as on a device; a file that fails is reported on its line, never
raised, so one bad file does not hide the others' answers.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import first_line

# The runtimes a probe can be asked for, with the distribution that reports their version.
RUNTIMES = {"ai-edge-litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime",
            "onnxruntime": "onnxruntime", "mediapipe": "mediapipe"}
# The operators that hold a CNN's arithmetic: left out of XNNPACK, they run on the
# interpreter's own kernels, several times slower.
ARITHMETIC_OPERATORS = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "AVERAGE_POOL_2D",
    "MAX_POOL_2D", "MEAN", "BATCH_MATMUL", "ADD", "MUL"})
PROBE_IMAGES = 4
PROBE_SEED = 0


def probe_pixels(image_size: int) -> np.ndarray:
    """The images every platform is given: seeded uniform random uint8 pixels, the same bytes
    on any machine."""
    generator = np.random.default_rng(PROBE_SEED)
    return generator.integers(0, 256, (PROBE_IMAGES, image_size, image_size, 3), np.uint8)


def delegation(interpreter) -> dict:
    """Which of a loaded TFLite interpreter's operators the delegates took: the DELEGATE nodes
    appended after allocation each cover the nodes between their input and output tensors,
    found by walking back from the outputs to the inputs (weights have no producer)."""
    nodes = interpreter._get_ops_details()  # no public API lists the nodes
    delegates = [node for node in nodes if node["op_name"] == "DELEGATE"]
    # No DELEGATE node: XNNPACK took nothing (tflite-runtime 2.14 on any file, ai-edge-litert
    # on int16 activations). Timed with and without its default delegates, such files ran
    # 0.9x-1.1x as fast (docs/dependencies.md).
    operators = [node for node in nodes if node["op_name"] != "DELEGATE"]
    producer = {int(tensor): node["index"] for node in operators for tensor in node["outputs"]}
    by_index = {node["index"]: node for node in operators}
    taken = set()
    for delegate in delegates:
        boundary = {int(tensor) for tensor in delegate["inputs"]}
        pending = [int(tensor) for tensor in delegate["outputs"]]
        while pending:
            tensor = pending.pop()
            if tensor in boundary or tensor not in producer or producer[tensor] in taken:
                continue
            taken.add(producer[tensor])
            pending.extend(int(t) for t in by_index[producer[tensor]]["inputs"])
    return {"operators": len(operators), "delegated": len(taken),
            "not_delegated": [node["op_name"] for node in operators
                              if node["index"] not in taken]}


def _probe_interpreter(path: Path, runtime: str, images: list[str]) -> dict:
    from .classifier import Classifier

    classifier = Classifier(path, threads=1, backend=runtime, verify=False)
    answer = {"loads": True}
    try:
        pixels = (np.stack([classifier.preprocess(image) for image in images]) if images
                  else probe_pixels(classifier.image_size))
        answer["probabilities"] = classifier.probabilities(pixels).tolist()
    except Exception as exc:  # noqa: BLE001 - the runtime's own failure is the answer
        return {**answer, "runs": False, "error": first_line(exc)}
    answer["runs"] = True
    if runtime != "onnxruntime":
        try:
            answer["xnnpack"] = delegation(classifier.model.interpreter)
        except (AttributeError, KeyError, ValueError) as exc:  # a runtime without the listing
            answer["xnnpack_error"] = first_line(exc)
    return answer


def _probe_mediapipe(path: Path) -> dict:
    """MediaPipe's ImageClassifier on the file, as an app built on MediaPipe would load it:
    the labels and normalization from the file's own metadata."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions
    from mediapipe.tasks.python.vision import ImageClassifier, ImageClassifierOptions

    options = ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                     max_results=-1)
    with ImageClassifier.create_from_options(options) as classifier:
        answer = {"loads": True}
        from .model_metadata import read_tflite_info  # MediaPipe reads the same metadata

        size = read_tflite_info(path.read_bytes(), str(path)).image_size
        probabilities = []
        for pixels in probe_pixels(size):
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(pixels))
            categories = classifier.classify(image).classifications[0].categories
            row = [0.0] * len(categories)
            for category in categories:
                row[category.index] = float(category.score)
            probabilities.append(row)
    return {**answer, "runs": True, "probabilities": probabilities}


def probe(path: Path, runtime: str, images: Optional[list[str]] = None) -> dict:
    """One file on one runtime: loads, runs, probabilities (of ``images``, else of the seeded
    random pixels), delegation; never raises."""
    answer = {"file": str(path), "runtime": runtime}
    try:
        answer["version"] = metadata.version(RUNTIMES[runtime])
    except metadata.PackageNotFoundError:
        return {**answer, "loads": False, "runs": False, "error": f"{runtime} is not installed"}
    try:
        if runtime == "mediapipe":
            return {**answer, **_probe_mediapipe(path)}
        return {**answer, **_probe_interpreter(path, runtime, images or [])}
    except Exception as exc:  # noqa: BLE001 - every failure to load is the answer
        return {**answer, "loads": False, "runs": False, "error": first_line(exc)}


def main(argv=None) -> int:
    """Probe each file on the runtime and print one JSON line per file."""
    parser = argparse.ArgumentParser(prog="python3 -m edge_runtime.probe", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--runtime", choices=sorted(RUNTIMES), required=True)
    parser.add_argument("--images", type=Path, default=None, metavar="LIST",
                        help="a text file of image paths, one per line, to classify instead "
                             "of the seeded random pixels")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    images = args.images.read_text().splitlines() if args.images else None
    where = {"machine": platform.machine(), "python": platform.python_version(),
             "numpy": np.__version__}
    for path in args.files:
        print(json.dumps({**probe(path, args.runtime, images), **where}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
