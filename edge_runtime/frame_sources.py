"""Where camera frames come from: the Pi camera (picamera2), a USB camera, a stream URL or a
video file (OpenCV), a folder of images, or a synthetic source for benchmarks and tests.

Every source hands out (H, W, 3) uint8 arrays; ``bgr`` says whether channels are B, G, R
(OpenCV's order), which the caller flips after the frame is shrunk to model size (flipping
a 32 x 32 crop is cheaper than a 640 x 480 frame). ``read()`` returns None at the end of a
finite source. Live cameras are wrapped in ``LatestFrame``: a thread keeps only the newest
frame, so a slow model never works through a backlog of stale frames; so is a stream URL.
"""
from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from .errors import ImageReadError, UserError, printable
from .image_paths import expand_image_paths
from .native_log import native_lines_dropped
from .preprocess import open_image, to_rgb_array

# OpenCV's warnings while it opens a source ("[ WARN:0@0.013] global cap_v4l.cpp:914 open
# VIDEOIO(V4L2:/dev/video7): can't open camera by index", GStreamer's position queries) repeat
# our own one-line error or say nothing a user can act on.
_OPENCV_WARNING = re.compile(r"\[ ?WARN:")


class CameraError(UserError):
    """A camera that cannot be opened, fails, or stops delivering frames."""


class SyntheticSource:
    """Endless frames of a fixed size, cycling through a few pre-generated images, so that
    "capture" costs what a camera driver's hand-off costs: nearly nothing."""

    bgr = False
    live = False

    def __init__(self, width: int = 640, height: int = 480, distinct_frames: int = 8,
                 seed: int = 0):
        rng = np.random.default_rng(seed)
        self.name = f"synthetic {width}x{height}"
        self.frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                       for _ in range(distinct_frames)]
        self.count = 0

    def read(self) -> np.ndarray:
        """The next frame."""
        frame = self.frames[self.count % len(self.frames)]
        self.count += 1
        return frame

    def close(self) -> None:
        """Nothing to release."""


class FolderSource:
    """The images of a folder (recursively, sorted) as frames, once each; unreadable files
    are reported on stderr and skipped. ``current`` is the file of the frame last read."""

    bgr = False
    live = False

    def __init__(self, folder: Path):
        self.name = str(folder)
        paths = list(expand_image_paths([str(folder)]))
        if not paths:
            raise CameraError(f"{folder}: no image files in this folder")
        self.paths = iter(paths)
        self.current: Optional[str] = None

    def read(self) -> Optional[np.ndarray]:
        """The next readable image, or None after the last one."""
        for path in self.paths:
            try:
                frame = to_rgb_array(open_image(path))
            except ImageReadError as exc:
                print(f"edgekit: skipping {printable(str(exc))}", file=sys.stderr)
                continue
            self.current = str(path)
            return frame
        return None

    def close(self) -> None:
        """Nothing to release."""


def without_password(url: str) -> str:
    """``url`` with the password of its user:password@ part starred out, for messages and
    logs (an IP camera's URL often carries one)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class OpenCVSource:
    """A USB camera (index) or a video file / stream URL, through OpenCV."""

    bgr = True

    def __init__(self, spec: str, width: int, height: int):
        try:
            import cv2
        except ImportError:
            raise CameraError("OpenCV is not installed: pip install opencv-python-headless "
                              "(or apt install python3-opencv on Pi OS)") from None
        camera = spec.isdigit()
        stream = "://" in spec
        # A stream (an IP camera's rtsp:// or http:// URL) is live like a camera: read in
        # order, a model slower than the stream would fall ever further behind it.
        self.live = camera or stream
        self.name = f"camera {spec}" if camera else without_password(spec)
        if not self.live and not Path(spec).is_file():
            raise CameraError(f"{spec}: no such video file or folder")
        with native_lines_dropped(_OPENCV_WARNING):
            self.capture = cv2.VideoCapture(int(spec) if camera else spec)
            opened = self.capture.isOpened()
        if not opened:
            raise CameraError(f"cannot open {self.name}")
        if camera:
            self.capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self.capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            # Ask the driver not to queue frames either (honoured by V4L2 on Linux).
            self.capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)

    def read(self) -> Optional[np.ndarray]:
        """The next frame; None at the end of a file. A live camera that fails to deliver
        returns None too and LatestFrame keeps asking until its stall timeout."""
        ok, frame = self.capture.read()
        return frame if ok else None

    def close(self) -> None:
        """Release the device or file."""
        self.capture.release()


class PiCameraSource:
    """The Raspberry Pi camera through picamera2 (libcamera)."""

    bgr = False
    live = True

    def __init__(self, width: int, height: int):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CameraError("picamera2 is not importable: on Pi OS, apt install "
                              "python3-picamera2 and create the venv with "
                              "--system-site-packages") from None
        self.name = "Pi camera"
        try:
            self.camera = Picamera2()
            # libcamera's "BGR888" is laid out R, G, B in memory: RGB arrays, no conversion.
            config = self.camera.create_video_configuration(
                main={"size": (width, height), "format": "BGR888"}, buffer_count=2)
            self.camera.configure(config)
            self.camera.start()
        except (RuntimeError, IndexError, OSError) as exc:
            raise CameraError(f"cannot start the Pi camera ({exc}); is it connected and "
                              "enabled, and not used by another program?") from None

    def read(self) -> np.ndarray:
        """The newest completed frame (blocks until one is ready)."""
        return self.camera.capture_array("main")

    def close(self) -> None:
        """Stop the camera so another program can use it."""
        self.camera.stop()
        self.camera.close()


class LatestFrame:
    """Reads a live source on a background thread and keeps only the newest frame.

    ``read()`` returns a frame newer than the last one returned, waiting at most
    ``stall_timeout`` seconds; a camera that delivers nothing for that long raises
    CameraError instead of hanging. ``dropped`` counts frames replaced before anyone read
    them (the price of never falling behind).
    """

    def __init__(self, source, stall_timeout: float = 5.0):
        self.source = source
        self.name = source.name
        self.bgr = source.bgr
        self.stall_timeout = stall_timeout
        self.dropped = 0
        self._frame: Optional[np.ndarray] = None
        self._delivered = 0
        self._taken = 0
        self._error: Optional[BaseException] = None
        self._stopping = False
        self._changed = threading.Condition()
        # A daemon thread: a driver stuck inside read() must not keep the process alive.
        self._thread = threading.Thread(target=self._grab, name="frame-grabber", daemon=True)
        self._thread.start()

    def _grab(self) -> None:
        while not self._stopping:
            try:
                frame = self.source.read()
            except Exception as exc:  # noqa: BLE001 - any driver failure ends the stream
                with self._changed:
                    self._error = exc
                    self._changed.notify()
                return
            if frame is None:
                time.sleep(0.005)  # a hiccup: keep asking until the stall timeout says stop
                continue
            with self._changed:
                self._frame = frame
                self._delivered += 1
                self._changed.notify()

    def read(self) -> np.ndarray:
        """The newest frame not yet returned; CameraError after stall_timeout without one."""
        with self._changed:
            fresh = self._changed.wait_for(
                lambda: self._delivered > self._taken or self._error is not None,
                timeout=self.stall_timeout)
            if self._error is not None:
                raise CameraError(f"{self.name} failed: {self._error}")
            if not fresh:
                raise CameraError(f"{self.name} delivered no frame for {self.stall_timeout:g} "
                                  "s; stopping (unplugged, or in use by another program?)")
            self.dropped += self._delivered - self._taken - 1
            self._taken = self._delivered
            return self._frame

    def close(self) -> None:
        """Stop grabbing and release the camera (unless its driver is stuck in a read)."""
        self._stopping = True
        self._thread.join(timeout=1.0)
        if not self._thread.is_alive():
            self.source.close()


class Replay:
    """A folder or video file played again from its start each time it ends (--loop): a
    demonstration, or a page to look at, that does not stop."""

    live = False

    def __init__(self, first, opener: Callable):
        """``first``: the source opened already; ``opener()`` opens it again from its start."""
        self.opener = opener
        self.source = first
        self.name = f"{self.source.name} (looped)"
        self.bgr = self.source.bgr

    @property
    def current(self) -> Optional[str]:
        return getattr(self.source, "current", None)

    def read(self) -> Optional[np.ndarray]:
        """The next frame; at the end, the first again (None if a fresh start has none)."""
        frame = self.source.read()
        if frame is None:
            self.source.close()
            self.source = self.opener()
            frame = self.source.read()
        return frame

    def close(self) -> None:
        self.source.close()


def open_source(spec: str, width: int = 640, height: int = 480, stall_timeout: float = 5.0,
                loop: bool = False):
    """A frame source from --source: "picamera", "synthetic", a camera index ("0"), a stream
    URL (rtsp://...), a folder of images, or a video file; "auto" is the Pi camera when
    picamera2 is importable, else USB camera 0. Live cameras and streams come wrapped in
    LatestFrame; with ``loop`` a folder or video file starts again when it ends."""
    if loop:
        source = open_source(spec, width, height, stall_timeout)
        if isinstance(source, (LatestFrame, SyntheticSource)):
            source.close()
            raise UserError("--loop replays a folder or a video file, not a camera, a stream "
                            "or the synthetic source")
        return Replay(source, lambda: open_source(spec, width, height, stall_timeout))
    if spec == "auto":
        try:
            import picamera2  # noqa: F401 - only probing
            spec = "picamera"
        except ImportError:
            spec = "0"
    if spec == "synthetic":
        return SyntheticSource(width, height)
    if spec == "picamera":
        return LatestFrame(PiCameraSource(width, height), stall_timeout)
    if Path(spec).is_dir():
        return FolderSource(Path(spec))
    source = OpenCVSource(spec, width, height)
    return LatestFrame(source, stall_timeout) if source.live else source
