"""Live classification from a camera, video file or folder: ``edgekit camera MODEL``, or on a
device without the edgekit command, ``python3 -m edge_runtime.camera MODEL``.

Each frame goes capture -> preprocess (center crop, shrink, RGB) -> inference -> output (a
window with the top-k labels and frames per second, or with --headless one JSON line per
frame), and the time of each step is measured so a slow loop shows where its time goes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional, TextIO

import numpy as np

if __package__ in (None, ""):  # run as a file: make the package importable, then reimport
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "edge_runtime"

from .classifier import Classifier, Prediction
from .classify_command import add_model_arguments
from .errors import UserError, check_counts, module_command, printable
from .frame_sources import CameraError, open_source
from .live_server import annotation_lines, draw_lines
from .preprocess import square_resize
from .progress_line import counted

STAGES = ("capture", "preprocess", "inference", "output")


@dataclass
class LoopStats:
    """Seconds spent per stage over all frames, and the frame count."""

    frames: int = 0
    seconds: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    wall: float = 0.0
    dropped: int = 0
    error: Optional[str] = None
    interrupted: bool = False  # stopped by Ctrl-C, the usual end of a live camera run

    def per_frame_ms(self) -> dict:
        """Mean milliseconds per frame for each stage."""
        return {stage: 1000.0 * total / max(self.frames, 1)
                for stage, total in self.seconds.items()}

    def summary(self) -> str:
        """One line for the end of a run."""
        split = ", ".join(f"{stage} {ms:.3f}" for stage, ms in self.per_frame_ms().items())
        rate = self.frames / self.wall if self.wall else 0.0
        stopped = " (stopped by Ctrl-C)" if self.interrupted else ""
        return (f"{counted(self.frames, 'frame')} in {self.wall:.2f} s ({rate:.1f} fps)"
                f"{stopped}; ms per frame: {split}; {counted(self.dropped, 'stale frame')} "
                f"skipped")


class FrameRate:
    """Frames per second over the last ``window`` frames."""

    def __init__(self, window: int = 30):
        self.times: deque = deque(maxlen=window)

    def tick(self, now: float) -> float:
        """Record a frame finished at ``now``; the current rate."""
        self.times.append(now)
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def run_loop(classifier: Classifier, source, output: Callable[[int, np.ndarray, Prediction,
             float, dict], None], top_k: int = 3, max_frames: Optional[int] = None) -> LoopStats:
    """Classify frames until the source ends, ``max_frames`` is reached, output raises
    StopIteration (a closed window), Ctrl-C is pressed (``stats.interrupted``) or the camera
    fails (``stats.error`` says how). Returns where the time went over whole frames (a frame
    that Ctrl-C cut short may have been output without being counted)."""
    stats = LoopStats()
    start = time.perf_counter()
    try:
        _classify_frames(classifier, source, output, top_k, max_frames, stats)
    except KeyboardInterrupt:
        stats.interrupted = True
    stats.wall = time.perf_counter() - start
    stats.dropped = getattr(source, "dropped", 0)
    return stats


def _classify_frames(classifier: Classifier, source, output: Callable, top_k: int,
                     max_frames: Optional[int], stats: LoopStats) -> None:
    rate = FrameRate()
    clock = time.perf_counter
    size = classifier.image_size
    while max_frames is None or stats.frames < max_frames:
        t0 = clock()
        try:
            frame = source.read()
        except CameraError as exc:
            stats.error = str(exc)
            break
        if frame is None:
            break
        t1 = clock()
        pixels = square_resize(frame, size)
        if source.bgr:
            pixels = np.ascontiguousarray(pixels[..., ::-1])
        t2 = clock()
        prediction = classifier.classify(pixels, top_k)
        t3 = clock()
        timing = {"capture": t1 - t0, "preprocess": t2 - t1, "inference": t3 - t2}
        try:
            output(stats.frames, frame, prediction, rate.tick(t3), timing)
        except StopIteration:
            break
        t4 = clock()
        for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stats.seconds[stage] += seconds
        stats.frames += 1


def frame_record(index: int, prediction: Prediction, fps: float, timing: dict,
                 source=None) -> dict:
    """What is said of a classified frame: top-k, fps, ms per stage, and the frame's file
    ("path", as edgekit classify writes it) when ``source`` is a folder."""
    record = {"frame": index}
    if getattr(source, "current", None) is not None:
        record["path"] = source.current
    record.update(prediction.to_dict(), fps=round(fps, 1),
                  ms={stage: round(1000 * s, 3) for stage, s in timing.items()})
    return record


def json_lines(stream: TextIO, source=None) -> Callable:
    """Output for --headless: one JSON object per frame (``frame_record``)."""
    def write(index, frame, prediction, fps, timing):
        stream.write(json.dumps(frame_record(index, prediction, fps, timing, source)) + "\n")
    return write


def served(hub, source=None) -> Callable:
    """Output for --serve: each frame and its record handed to the viewers' hub."""
    def publish(index, frame, prediction, fps, timing):
        hub.publish(index, frame, prediction, fps,
                    lambda: frame_record(index, prediction, fps, timing, source))
    return publish


def window(title: str, bgr: bool) -> Callable:
    """Output for desktop use: the frame in an OpenCV window with the top-k labels and fps;
    q, Esc or the window's close button ends the run."""
    try:
        import cv2
    except ImportError:
        raise UserError("showing frames needs OpenCV with GUI support (pip install "
                        "opencv-python, or apt install python3-opencv); or use --headless") \
            from None
    seen_open: set = set()

    def closed_by_user() -> bool:
        # Without this check the loop went on after the window was closed (GTK opens it again
        # at the next imshow), and only Ctrl-C ended the run. Backends say "closed" on
        # different properties: GTK (Pi OS's OpenCV) drops the window (AUTOSIZE reads -1) and
        # reports VISIBLE as -1 always; Qt hides it (VISIBLE reads 0). So a property counts
        # only once it has read "open".
        try:
            states = {"exists": cv2.getWindowProperty(title, cv2.WND_PROP_AUTOSIZE) >= 0,
                      "visible": cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) >= 1}
        except cv2.error:  # some builds raise for a window that is gone
            return bool(seen_open)
        seen_open.update(name for name, is_open in states.items() if is_open)
        return any(not states[name] for name in seen_open)

    def show(index, frame, prediction, fps, timing):
        image = np.ascontiguousarray(frame if bgr else frame[..., ::-1])
        draw_lines(cv2, image, annotation_lines(prediction, fps))
        try:
            cv2.imshow(title, image)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error:
            raise UserError("this OpenCV build cannot open windows (opencv-python-headless?); "
                            "use --headless, or install opencv-python") from None
        if key in (ord("q"), 27) or closed_by_user():
            raise StopIteration
    return show


def add_camera_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the flags of ``edgekit camera``."""
    parser.add_argument("model", help="a .tflite or .onnx file from edgekit convert")
    parser.add_argument("--source", default="auto",
                        help="picamera, a USB camera index (0), a stream URL (rtsp://...), "
                             "a video file, a folder of images, or synthetic; auto: picamera "
                             "if picamera2 is installed, else camera 0")
    parser.add_argument("--headless", action="store_true",
                        help="no window: print one JSON line per frame")
    parser.add_argument("--serve", metavar="[HOST:]PORT", default=None,
                        help="no window: serve the annotated video, the predictions and a page "
                             "showing both over HTTP (PORT alone: 127.0.0.1, this machine only; "
                             "0.0.0.0:PORT: the network, with a token)")
    parser.add_argument("--serve-fps", type=float, default=15.0,
                        help="most video frames a second sent to viewers (encoded only while "
                             "someone watches)")
    parser.add_argument("--token", default=None,
                        help="the token viewers must give (default: a new one when --serve "
                             "is not loopback)")
    parser.add_argument("--max-clients", type=int, default=4,
                        help="most connections served at once; more get 503")
    parser.add_argument("--loop", action="store_true",
                        help="play a folder or video file again from the start when it ends")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    parser.add_argument("--top-k", type=int, default=3, help="how many classes to show")
    parser.add_argument("--width", type=int, default=640, help="capture width")
    parser.add_argument("--height", type=int, default=480, help="capture height")
    parser.add_argument("--stall-timeout", type=float, default=5.0,
                        help="stop if a live camera or stream delivers no frame for this many "
                             "seconds")
    add_model_arguments(parser)


def run_camera(args: argparse.Namespace) -> int:
    """Open the model and the source, run the loop, print the timing summary."""
    check_counts(("--top-k", args.top_k), ("--max-frames", args.max_frames),
                 ("--width", args.width), ("--height", args.height), ("--threads", args.threads))
    if not args.stall_timeout > 0:
        raise UserError(f"--stall-timeout must be positive, got {args.stall_timeout}")
    # Bound first: a port in use is said before the model and the camera are opened.
    server = _bind(args) if args.serve is not None else None
    try:
        classifier = Classifier(args.model, threads=args.threads, backend=args.backend,
                                tta=args.tta, verify=not args.no_verify)
        source = open_source(args.source, args.width, args.height, args.stall_timeout,
                             args.loop)
    except BaseException:
        if server is not None:
            server.close()
        raise
    print(printable(f"edgekit camera: {source.name} -> {classifier.path.name} on "
                    f"{classifier.backend}"), file=sys.stderr)
    outputs = []
    if args.headless:
        outputs.append(json_lines(sys.stdout, source))
    if server is not None:
        outputs.append(_start_serving(server, args, classifier, source))
    if not outputs:
        outputs.append(window("edgekit", source.bgr))

    def output(*frame):
        for each in outputs:
            each(*frame)
    try:
        stats = run_loop(classifier, source, output, args.top_k, args.max_frames)
    finally:
        if server is not None:
            server.close()
        source.close()
    print(f"edgekit camera: {stats.summary()}", file=sys.stderr)
    if stats.error:
        print(f"edgekit camera: {printable(stats.error)}", file=sys.stderr)
        return 1
    if stats.frames == 0 and not stats.interrupted:
        # A source that gave nothing to classify (a folder of unreadable images) is a failure,
        # as it is for edgekit classify.
        print(printable(f"edgekit camera: no frame classified from {source.name}"),
              file=sys.stderr)
        return 1
    return 0


def _bind(args: argparse.Namespace):
    """The --serve server, listening but not yet serving."""
    from .live_server import LiveServer, parse_serve_address, serve_token

    check_counts(("--max-clients", args.max_clients))
    if not 0 < args.serve_fps <= 120:  # a NaN too
        raise UserError(f"--serve-fps must be above 0 and at most 120, got {args.serve_fps}")
    host, port = parse_serve_address(args.serve)
    return LiveServer(host, port, serve_token(host, args.token), args.max_clients)


def _start_serving(server, args: argparse.Namespace, classifier: Classifier, source) -> Callable:
    """Serve the run's frames; the loop's output that feeds the viewers."""
    from .live_server import FrameHub, jpeg_encoder, page_url

    hub = FrameHub(args.serve_fps, source.bgr, jpeg_encoder())
    server.start(hub, lambda: {"model": classifier.path.name, "backend": classifier.backend,
                               "source": source.name, "frames": hub.frames,
                               "fps": round(hub.fps, 1), "encoded_frames": hub.encoded,
                               "serve_fps": args.serve_fps})
    print(printable(f"edgekit camera: serving {page_url(server.host, server.port, server.token)}"
                    + ("" if server.token else " (this machine only)")),
          file=sys.stderr, flush=True)
    return served(hub, source)


def main(argv=None) -> int:
    """``python3 -m edge_runtime.camera``: the same command without the edgekit CLI."""
    return module_command("camera", __doc__.splitlines()[0], add_camera_arguments, run_camera,
                          argv)


if __name__ == "__main__":
    sys.exit(main())
