"""``edgekit classify MODEL PATH...``: classify files, folders and globs with a deployed model.

Imports only the runtime (numpy, pillow, one interpreter), never TensorFlow. A bad image is
reported on its own line and the command keeps going; the exit code is 1 if any image failed.
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path

from .classifier import TTA_MODES
from .errors import ImageReadError, UserError, check_counts, module_command, printable
from .interpreters import BACKENDS
from .progress_line import ProgressLine


def add_classify_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the flags of ``edgekit classify``."""
    parser.add_argument("model", type=Path, help="a .tflite or .onnx file from edgekit convert")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="image files, folders (searched recursively) or glob patterns; "
                             "- reads one image from standard input (rpicam-still -o - | ...)")
    parser.add_argument("--top-k", type=int, default=3, help="how many classes to show")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line: path, label, score, top_k "
                             "(or path and error)")
    add_model_arguments(parser)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--threads, --backend, --tta and --no-verify, shared by classify and camera."""
    parser.add_argument("--threads", type=int, default=None,
                        help="interpreter threads (default: the interpreter's choice)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="interpreter; auto: ai-edge-litert, else tflite-runtime for "
                             ".tflite, onnxruntime for .onnx")
    parser.add_argument("--tta", default="none", choices=TTA_MODES,
                        help="test-time augmentation; flip: average each image with its "
                             "mirror image (twice the inference time; only for classes "
                             "that look the same mirrored)")
    parser.add_argument("--no-verify", action="store_true",
                        help="run a file that the manifest.json beside it lists without a "
                             "sha256 (with a warning) instead of refusing it")


def run_classify(args: argparse.Namespace) -> int:
    """Classify every image; 0 if all were read, 1 if any failed."""
    from .classifier import Classifier
    from .image_paths import expand_image_paths

    # Before the model loads, and in the flags' own names.
    check_counts(("--top-k", args.top_k), ("--threads", args.threads))
    classifier = Classifier(args.model, threads=args.threads, backend=args.backend,
                            tta=args.tta, verify=not args.no_verify)
    mirrored = ", each averaged with its mirror image" if args.tta == "flip" else ""
    print(f"edgekit: {printable(args.model.name)} on {classifier.backend}, "
          f"{len(classifier.labels)} "
          f"classes, {classifier.image_size} px input{mirrored}", file=sys.stderr)
    paths = list(expand_image_paths(args.paths))
    if not paths:  # folders without a single image file
        raise UserError(f"no image files in {', '.join(args.paths)}")
    piped = read_standard_input() if STDIN in args.paths else None
    done = failed = 0
    start = time.perf_counter()
    # Every answer is a line on stdout, which shows the progress on a terminal; when the
    # answers go to a file, a counter on the terminal's stderr does.
    with ProgressLine("edgekit: classifying", len(paths), sys.stderr,
                      wanted=not sys.stdout.isatty()) as progress:
        for path in paths:
            progress.update(done + failed, f", {failed} failed" if failed else "")
            try:
                if glob.has_magic(str(path)) and not path.exists():
                    # A pattern that matched nothing; the shell's globs are
                    # case-sensitive too, and cameras write both .jpg and .JPG.
                    raise ImageReadError("no file matches this pattern (case-sensitive)")
                source = piped if str(path) == STDIN else path
                prediction = classifier.classify(source, top_k=args.top_k)
            except ImageReadError as exc:
                failed += 1
                message = _without_path(path, exc)
                print(json.dumps({"path": str(path), "error": message}) if args.json
                      else printable(f"{path}: error: {message}"), flush=True)
                continue
            done += 1
            if args.json:
                print(json.dumps({"path": str(path), **prediction.to_dict()}))
            else:
                ranked = ", ".join(f"{label} {score:.3f}" for label, score in prediction.top_k)
                print(printable(f"{path}: {ranked}"))
    seconds = time.perf_counter() - start
    print(f"edgekit: classified {done} image(s), {failed} failed, in {seconds:.1f} s",
          file=sys.stderr)
    return 1 if failed else 0


# The PATH that stands for one image piped in on standard input.
STDIN = "-"


def read_standard_input() -> bytes:
    """The image piped in for PATH "-"; UserError when standard input is a terminal (where
    reading would wait for typing) or brings nothing."""
    if sys.stdin is None or sys.stdin.isatty():
        raise UserError("PATH - reads an image piped in on standard input "
                        "(rpicam-still -o - | edgekit classify MODEL -), but none is piped in")
    data = sys.stdin.buffer.read()
    if not data:
        raise UserError("PATH -: standard input brought no image")
    return data


def _without_path(path: Path, error: Exception) -> str:
    # The message already names the file (piped bytes as <bytes>), which its line names first.
    message = str(error)
    for prefix in (f"{path}: ", "<bytes>: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def main(argv=None) -> int:
    """``python3 -m edge_runtime.classify_command``: the same command without the edgekit CLI,
    for a device that has the runtime alone."""
    return module_command("classify_command", __doc__.splitlines()[0], add_classify_arguments,
                          run_classify, argv)


if __name__ == "__main__":
    sys.exit(main())
