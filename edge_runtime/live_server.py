"""The camera classifier in a browser: ``edgekit camera MODEL --serve [HOST:]PORT``.

The classification loop hands each frame to a ``FrameHub`` and goes on: publishing stores a
reference and queues a JSON line for each prediction feed, nothing more. JPEG encoding runs
on a thread of its own, only while a viewer is ready for a frame, at most ``--serve-fps``
times a second, always of the newest frame; every viewer gets the newest JPEG when its
connection is ready for one, so a slow viewer skips frames, and a stalled one costs no
encoding and is dropped once its socket has blocked for SEND_TIMEOUT seconds, without the loop
noticing either.

Routes: ``/`` (the page, live_page.py), ``/stream.mjpg`` (multipart MJPEG), ``/predictions``
(Server-Sent Events, one JSON object per classified frame) and ``/status.json``. Nothing else
is served. Bound to anything but loopback it asks every request for the token (``?token=``
or ``Authorization: Bearer``).
"""
from __future__ import annotations

import errno
import hmac
import io
import ipaddress
import json
import secrets
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .errors import UserError
from .live_page import PAGE

SEND_TIMEOUT = 10.0      # seconds a viewer's socket may block before it is dropped
WAIT_STEP = 0.25         # how often waiting threads look whether the run has ended
CLOSE_GRACE = 0.5        # seconds responses get to end before blocked sockets are shut
FEED_BACKLOG = 64        # predictions kept for a feed that reads slowly; older ones dropped
MAX_PATH = 1024          # longest request target accepted
BOUNDARY = "frame"
JPEG_QUALITY = 80
MIN_VIEW_WIDTH = 320


def parse_serve_address(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); the host defaults to
    127.0.0.1, and port 0 is any free one (the printed URL says which)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise UserError(f"--serve {text!r}: give PORT or HOST:PORT, e.g. 8000 or "
                        "0.0.0.0:8000")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def annotation_lines(prediction, fps: float) -> list[str]:
    """What an annotated frame shows: the top-k labels with scores, then the frame rate."""
    return [f"{label} {score:.2f}" for label, score in prediction.top_k] + [f"{fps:.1f} fps"]


def draw_lines(cv2, image: np.ndarray, lines: list[str]) -> None:
    """Write ``lines`` in green at the top left of a BGR ``image`` (OpenCV)."""
    for row, text in enumerate(lines):
        cv2.putText(image, text, (10, 30 + 28 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                    (0, 255, 0), 2, cv2.LINE_AA)


def _viewable(frame: np.ndarray) -> np.ndarray:
    """A frame narrower than MIN_VIEW_WIDTH (a 32-pixel image from a folder) enlarged by a
    whole factor, pixels repeated, so that the labels drawn on it fit and it can be seen."""
    factor = -(-MIN_VIEW_WIDTH // frame.shape[1])
    if factor <= 1:
        return frame
    return np.repeat(np.repeat(frame, factor, axis=0), factor, axis=1)


def jpeg_encoder() -> Callable[[np.ndarray, bool, list[str]], bytes]:
    """(frame, frame is BGR, lines) -> annotated JPEG bytes, with OpenCV, else Pillow."""
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        def encode(frame, bgr, lines):
            image = np.ascontiguousarray(_viewable(frame if bgr else frame[..., ::-1]))
            draw_lines(cv2, image, lines)
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            return data.tobytes()
        return encode
    try:
        from PIL import Image, ImageDraw
    except ImportError:
        raise UserError("--serve needs OpenCV or Pillow to encode JPEG (pip install pillow)") \
            from None

    def encode(frame, bgr, lines):
        image = Image.fromarray(np.ascontiguousarray(_viewable(frame[..., ::-1] if bgr
                                                               else frame)))
        draw = ImageDraw.Draw(image)
        for row, text in enumerate(lines):
            draw.text((10, 10 + 22 * row), text, fill=(0, 255, 0))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue()
    return encode


class FrameHub:
    """Between the loop and the viewers: the newest frame, the newest JPEG, and a bounded
    queue of predictions for each feed."""

    def __init__(self, serve_fps: float, bgr: bool, encode: Callable):
        self.serve_fps = serve_fps
        self.bgr = bgr
        self.encode = encode
        self.closed = False
        self.frames = 0
        self.encoded = 0
        self.viewers = 0   # video connections
        self.waiting = 0   # of those, the ones ready for a newer JPEG now
        self.fps = 0.0
        self._frame: Optional[tuple] = None     # (index, frame, prediction, fps)
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._feeds: list[deque] = []
        self._changed = threading.Condition()
        self._encoder = threading.Thread(target=self._encode_while_watched, name="jpeg-encoder",
                                         daemon=True)
        self._encoder.start()

    def publish(self, index: int, frame: np.ndarray, prediction, fps: float,
                describe: Callable[[], dict]) -> None:
        """Called by the loop for every frame: O(1) work per feed, no encoding, no waiting."""
        # The frame's record is made only when a prediction feed is open to read it.
        line = json.dumps(describe()) if self._feeds else None
        with self._changed:
            self.frames += 1
            self.fps = fps
            self._frame = (index, frame, prediction, fps)
            for feed in self._feeds:
                feed.append(line)
            self._changed.notify_all()

    def close(self) -> None:
        """The run is over: every waiting viewer and feed ends its response."""
        with self._changed:
            self.closed = True
            self._changed.notify_all()
        self._encoder.join(timeout=1.0)

    def _encode_while_watched(self) -> None:
        done = -1
        next_slot = 0.0
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self.closed or self._wanted(done),
                                       timeout=WAIT_STEP)
                if self.closed:
                    return
                if not self._wanted(done):
                    continue
            # At most serve_fps encodings a second, each of the newest frame at its time.
            delay = next_slot - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_slot = time.monotonic() + 1.0 / self.serve_fps
            with self._changed:
                index, frame, prediction, fps = self._frame
            data = self.encode(frame, self.bgr, annotation_lines(prediction, fps))
            with self._changed:
                self._jpeg = (self._jpeg[0] + 1, data)
                self.encoded += 1
                done = index
                self._changed.notify_all()

    def _wanted(self, done: int) -> bool:
        # A frame not yet encoded, and a viewer ready to take it: one whose socket is blocked
        # (it stopped reading) waits in no next_jpeg, so it costs no encoding.
        return self.waiting > 0 and self._frame is not None and self._frame[0] != done

    def next_jpeg(self, after: int) -> Optional[tuple[int, bytes]]:
        """The newest JPEG newer than number ``after``, waiting for one; None once closed."""
        with self._changed:
            self.waiting += 1
            self._changed.notify_all()
            try:
                while not self.closed:
                    if self._jpeg[0] > after:
                        return self._jpeg
                    self._changed.wait(WAIT_STEP)
                return None
            finally:
                self.waiting -= 1

    def watching(self, change: int) -> None:
        """A video viewer came (+1) or went (-1)."""
        with self._changed:
            self.viewers += change
            self._changed.notify_all()

    def open_feed(self) -> deque:
        """A queue that gets every prediction from now on (the oldest dropped when full)."""
        feed: deque = deque(maxlen=FEED_BACKLOG)
        with self._changed:
            self._feeds.append(feed)
        return feed

    def close_feed(self, feed: deque) -> None:
        with self._changed:
            self._feeds.remove(feed)

    def next_lines(self, feed: deque) -> Optional[list[str]]:
        """The predictions queued on ``feed``, waiting for some; None once closed."""
        with self._changed:
            while not self.closed:
                if feed:
                    lines = list(feed)
                    feed.clear()
                    return lines
                self._changed.wait(WAIT_STEP)
            return None


class LiveServer:
    """The HTTP server of a --serve run, on threads of its own."""

    def __init__(self, host: str, port: int, token: Optional[str], max_clients: int):
        self.host = host
        self.token = token
        self.hub: Optional[FrameHub] = None
        self.status: Callable[[], dict] = dict
        self.started = time.monotonic()
        self.max_clients = max_clients
        self.clients = 0
        self._connections: set = set()
        self._lock = threading.Lock()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("Server", (ThreadingHTTPServer,), {
            "address_family": family, "daemon_threads": True, "allow_reuse_address": True})
        try:
            self.httpd = server_class((host, port), _handler_for(self))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"--serve {host}:{port}: the port is in use by another "
                                "program; choose another") from None
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or \
                    isinstance(exc, socket.gaierror):
                raise UserError(f"--serve {host}:{port}: no such address on this "
                                "machine") from None
            raise
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http-server",
                                        kwargs={"poll_interval": WAIT_STEP}, daemon=True)

    def start(self, hub: FrameHub, status: Callable[[], dict]) -> None:
        """Serve ``hub``'s frames; ``status()`` is what /status.json says of the run."""
        self.hub = hub
        self.status = status
        self._thread.start()

    def admit(self) -> bool:
        """Take a client slot; False when all --max-clients are taken."""
        with self._lock:
            if self.clients >= self.max_clients:
                return False
            self.clients += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.clients -= 1

    def track(self, connection, open_: bool) -> None:
        with self._lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def close(self) -> None:
        """End every response, then stop listening; sockets still blocked are shut."""
        if self.hub is not None:
            self.hub.close()
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
        deadline = time.monotonic() + CLOSE_GRACE
        while time.monotonic() < deadline:
            with self._lock:
                if not self._connections:
                    return
            time.sleep(0.05)
        with self._lock:
            for connection in list(self._connections):
                try:  # a viewer that stopped reading: its blocked send fails at once
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _handler_for(server: LiveServer):
    class Handler(BaseHTTPRequestHandler):
        """The four routes; everything else is 404, anything but GET and HEAD 405."""

        server_version = "edgekit"
        sys_version = ""

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass  # the terminal belongs to the run's own lines

        def do_GET(self):  # noqa: N802 - the base class's name
            if len(self.path) > MAX_PATH:
                return self._text(414, "request target too long")
            if int(self.headers.get("Content-Length") or 0) > 0:
                return self._text(413, "a GET takes no body")
            route = urlsplit(self.path)
            if server.token is not None and not self._authorized(route.query):
                return self._text(401, "a token is needed: open the URL that edgekit "
                                       "camera printed (with ?token=...)")
            routes = {"/": self._page, "/stream.mjpg": self._mjpeg,
                      "/predictions": self._predictions, "/status.json": self._status}
            if route.path not in routes:
                return self._text(404, "not found")
            if not server.admit():
                return self._text(503, f"too many clients: at most {server.max_clients} at "
                                       "once (--max-clients)")
            server.track(self.connection, True)
            try:
                routes[route.path]()
            except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
                pass  # the viewer went away or stalled: its response ends here
            finally:
                server.track(self.connection, False)
                server.release()

        def do_POST(self):  # noqa: N802
            self._text(405, "GET only")

        do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

        def _authorized(self, query: str) -> bool:
            given = parse_qs(query).get("token", [""])[0]
            header = self.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                given = header[len("Bearer "):]
            return hmac.compare_digest(given.encode(), server.token.encode())

        def _text(self, code: int, message: str) -> None:
            self._whole(code, "text/plain; charset=utf-8", (message + "\n").encode())

        def _whole(self, code: int, content_type: str, body: bytes) -> None:
            """A response of known length."""
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _headers(self, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.connection.settimeout(SEND_TIMEOUT)

        def _page(self) -> None:
            self._whole(200, "text/html; charset=utf-8", PAGE.encode())

        def _status(self) -> None:
            body = json.dumps(dict(server.status(), clients=server.clients,
                                   viewers=server.hub.viewers,
                                   uptime_s=round(time.monotonic() - server.started, 1))
                              ).encode()
            self._whole(200, "application/json", body)

        def _mjpeg(self) -> None:
            self._headers(f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            hub, number = server.hub, 0
            hub.watching(+1)
            try:
                while (newest := hub.next_jpeg(number)) is not None:
                    number, data = newest
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                     f"Content-Length: {len(data)}\r\n\r\n".encode()
                                     + data + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(f"--{BOUNDARY}--\r\n".encode())
            finally:
                hub.watching(-1)

        def _predictions(self) -> None:
            self._headers("text/event-stream")
            hub = server.hub
            feed = hub.open_feed()
            try:
                self.wfile.write(b": predictions of every classified frame\n\n")
                self.wfile.flush()
                while (lines := hub.next_lines(feed)) is not None:
                    self.wfile.write("".join(f"data: {line}\n\n" for line in lines).encode())
                    self.wfile.flush()
                self.wfile.write(b"event: end\ndata: {}\n\n")
            finally:
                hub.close_feed(feed)
    return Handler


def serve_token(host: str, given: Optional[str]) -> Optional[str]:
    """The token requests must carry: ``given``, else a new one when ``host`` is not
    loopback, else none."""
    if given is not None:
        if len(given) < 8:
            raise UserError("--token must be at least 8 characters")
        return given
    return None if is_loopback(host) else secrets.token_urlsafe(16)


def page_url(host: str, port: int, token: Optional[str]) -> str:
    """The URL to open: this machine's name for a server on every address."""
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
