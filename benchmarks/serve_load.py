"""What watching costs the camera loop: ``python -m edgekit.benchmarks.serve_load MODEL``.

Runs ``edgekit camera MODEL --source synthetic --serve 127.0.0.1:0`` (640x480 frames unless
told otherwise) and measures its classification rate, from /status.json's frame count, under
three conditions taken in turn, round after round, so that the machine's drift falls on all of
them alike: no viewer; one viewer reading the MJPEG stream as fast as it comes (at most
--serve-fps); one viewer that opened the stream and stopped reading. Each round's rates are
divided by the same round's rate without a viewer; the medians of those ratios are printed.
Last, the time from Ctrl-C to the process's exit with two viewers connected, one stalled.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager, nullcontext

CONDITIONS = ("no viewer", "one viewer", "one stalled viewer")


def _counts(status_url: str) -> tuple[float, int, int]:
    """(now, frames classified, JPEGs encoded) of the run."""
    with urllib.request.urlopen(status_url, timeout=30) as response:
        status = json.loads(response.read())
    return time.perf_counter(), status["frames"], status["encoded_frames"]


@contextmanager
def _viewer(stream_url: str, reading: bool):
    """A video connection that reads everything (``reading``) or nothing after its headers."""
    response = urllib.request.urlopen(stream_url, timeout=30)
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set() and response.read(1 << 16):
            pass
    reader = threading.Thread(target=read, daemon=True)
    if reading:
        reader.start()
    try:
        yield
    finally:
        stop.set()
        response.close()


def measure(model: str, rounds: int, seconds: float, width: int, height: int,
            serve_fps: float, threads: int) -> tuple[dict, dict]:
    """Frames classified and JPEGs encoded per second in each condition, one value per
    round."""
    command = [sys.executable, "-m", "edge_runtime.camera", model, "--source", "synthetic",
               "--width", str(width), "--height", str(height), "--serve", "127.0.0.1:0",
               "--serve-fps", str(serve_fps), "--threads", str(threads)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        for line in process.stderr:
            if "serving http" in line:
                page = line.split("serving ")[1].split()[0].rstrip("/")
                break
        else:
            raise SystemExit("the camera did not start serving")
        rates: dict[str, list[float]] = {name: [] for name in CONDITIONS}
        encoded: dict[str, list[float]] = {name: [] for name in CONDITIONS}
        time.sleep(seconds)  # the interpreter and caches warm up first
        for index in range(rounds):
            order = CONDITIONS[index % 3:] + CONDITIONS[:index % 3]
            for name in order:
                viewer = _viewer(page + "/stream.mjpg", reading=name == "one viewer") \
                    if name != "no viewer" else nullcontext()
                with viewer:
                    time.sleep(0.5)  # a stalled viewer's socket buffer fills first
                    start, first, first_jpeg = _counts(page + "/status.json")
                    time.sleep(seconds)
                    end, last, last_jpeg = _counts(page + "/status.json")
                rates[name].append((last - first) / (end - start))
                encoded[name].append((last_jpeg - first_jpeg) / (end - start))
                print(f"round {index + 1}/{rounds}, {name}: {rates[name][-1]:.1f} fps, "
                      f"{encoded[name][-1]:.1f} JPEGs/s", file=sys.stderr, flush=True)
        # The end with viewers connected, one of them stalled: Ctrl-C to the process's exit.
        with _viewer(page + "/stream.mjpg", reading=True), \
                _viewer(page + "/stream.mjpg", reading=False):
            time.sleep(1.0)
            start = time.perf_counter()
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=30)
            rates["seconds to end"] = [time.perf_counter() - start]
        return rates, encoded
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=30)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgekit.benchmarks.serve_load",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .tflite or .onnx file")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="per condition and round")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--serve-fps", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=1,
                        help="interpreter threads (1 leaves a core to the server on 2)")
    args = parser.parse_args(argv)
    rates, encoded = measure(args.model, args.rounds, args.seconds, args.width, args.height,
                    args.serve_fps, args.threads)
    baseline = rates["no viewer"]
    print(f"{'condition':<20} {'median fps':>10} {'JPEGs/s':>8} {'vs no viewer':>13}  per round")
    for name in CONDITIONS:
        ratios = [rate / base for rate, base in zip(rates[name], baseline)]
        print(f"{name:<20} {statistics.median(rates[name]):>10.1f} "
              f"{statistics.median(encoded[name]):>8.1f} {statistics.median(ratios):>13.3f}  "
              + " ".join(f"{ratio:.3f}" for ratio in ratios))
    print(f"Ctrl-C with a viewer reading and one stalled: the run ended in "
          f"{rates['seconds to end'][0]:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
