"""The camera loop: synthetic, folder and video sources, headless JSON lines, the timing split,
latest-frame-wins for live cameras, and a camera that stops delivering frames."""
import functools
import http.server
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS, default_ctrl_c
from PIL import Image

from edge_runtime import camera
from edge_runtime.classifier import Classifier
from edge_runtime.frame_sources import CameraError, LatestFrame, SyntheticSource, open_source
from edgekit.cli import main

pytestmark = pytest.mark.slow


def model_file(converted_run, name="int8") -> Path:
    run, _, manifest = converted_run
    entry = next(v for v in manifest["variants"] if v["name"] == name)
    return run / "artifacts" / entry["file"]


def test_headless_synthetic_source_prints_json_lines(converted_run, capsys):
    code = main(["camera", str(model_file(converted_run)), "--source", "synthetic",
                 "--headless", "--max-frames", "25", "--top-k", "2"])
    assert code == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.strip().splitlines()]
    assert [r["frame"] for r in records] == list(range(25))
    for record in records:
        assert record["label"] in LABELS and len(record["top_k"]) == 2
        assert "path" not in record  # only a folder's frames are files
        assert set(record["ms"]) == {"capture", "preprocess", "inference"}
        assert all(value >= 0 for value in record["ms"].values())
    assert records[-1]["fps"] > 0
    summary = captured.err.strip().splitlines()[-1]
    assert "25 frames" in summary
    for stage in ("capture", "preprocess", "inference", "output"):
        assert stage in summary


@pytest.mark.parametrize("tta", ["none", "flip"])
def test_frames_classify_like_files(converted_run, tmp_path, capsys, tta):
    """A folder of images as a source: every frame's answer equals edgekit classify's, with
    test-time augmentation too."""
    run, _, _ = converted_run
    images = sorted((run.parent / "data" / "test").rglob("*.png"))[:6]
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(images):
        big = np.kron(np.asarray(Image.open(image)), np.ones((15, 20, 1), np.uint8))
        Image.fromarray(big).save(folder / f"{i:02d}.png")  # 480 x 640, like a camera frame
    (folder / "07.png").write_bytes(b"corrupt")
    assert main(["camera", str(model_file(converted_run)), "--source", str(folder),
                 "--headless", "--tta", tta]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.strip().splitlines()]
    answers = [(r["label"], r["score"]) for r in records]
    classifier = Classifier(model_file(converted_run), tta=tta)
    expected = [classifier.classify(folder / f"{i:02d}.png") for i in range(6)]
    assert [r["path"] for r in records] == [str(folder / f"{i:02d}.png") for i in range(6)]
    assert [label for label, _ in answers] == [p.label for p in expected]
    assert [score for _, score in answers] == pytest.approx([p.score for p in expected])
    assert "skipping" in captured.err and "07.png" in captured.err


def write_clip(path: Path, frames: int) -> Path:
    """A small MJPG video of ``frames`` grey frames, written with OpenCV."""
    cv2 = pytest.importorskip("cv2")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
    writer.release()
    return path


def test_video_file_source(converted_run, tmp_path, capsys):
    path = write_clip(tmp_path / "clip.avi", 7)
    assert main(["camera", str(model_file(converted_run)), "--source", str(path),
                 "--headless", "--max-frames", "100"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 7


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_a_stream_url_is_read_as_a_live_camera(converted_run, tmp_path, capsys):
    # An IP camera's stream, here a video served over HTTP: read on a thread like a live
    # camera (newest frame wins), so its end is a stall, not the end of a file.
    write_clip(tmp_path / "clip.avi", 7)
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/clip.avi"
    try:
        source = open_source(url, stall_timeout=0.5)
        assert isinstance(source, LatestFrame) and source.read().shape == (48, 64, 3)
        source.close()
        code = main(["camera", str(model_file(converted_run)), "--source", url, "--headless",
                     "--stall-timeout", "1"])
    finally:
        server.shutdown()
    out, err = capsys.readouterr()
    assert code == 1 and 1 <= len(out.strip().splitlines()) <= 7
    assert f"{url} delivered no frame for 1 s" in err
    # A camera's password stays out of messages and logs.
    with pytest.raises(CameraError) as refused:
        open_source("http://admin:s3cret@127.0.0.1:9/stream")
    assert str(refused.value) == "cannot open http://admin:***@127.0.0.1:9/stream"


class CountingCamera:
    """A live camera delivering numbered frames every ``interval`` seconds, then (after
    ``stall_after`` frames) blocking forever like an unplugged driver."""

    bgr = False
    live = True
    name = "fake camera"

    def __init__(self, interval: float, stall_after: int = 10 ** 9):
        self.interval = interval
        self.stall_after = stall_after
        self.count = 0
        self.stalled = threading.Event()

    def read(self):
        if self.count >= self.stall_after:
            self.stalled.wait()  # never set: a driver stuck in its read call
        time.sleep(self.interval)
        self.count += 1
        return np.full((48, 64, 3), self.count % 256, np.uint8)

    def close(self):
        pass


def test_latest_frame_wins():
    camera_source = CountingCamera(interval=0.002)
    latest = LatestFrame(camera_source, stall_timeout=2.0)
    seen = []
    for _ in range(5):
        time.sleep(0.05)  # a slow model: about 25 frames arrive meanwhile
        frame = latest.read()
        seen.append(int(frame[0, 0, 0]))
        assert seen[-1] >= camera_source.count - 1  # the newest frame, not a queued one
    latest.close()
    assert seen == sorted(seen) and len(set(seen)) == 5
    assert latest.dropped >= 20


def test_the_summary_counts_one_frame_in_the_singular():
    one = camera.LoopStats(frames=1, wall=0.5, dropped=1).summary()
    assert one.startswith("1 frame in 0.50 s (2.0 fps)") and one.endswith("; 1 stale frame skipped")
    many = camera.LoopStats(frames=3, wall=1.5).summary()
    assert many.startswith("3 frames in 1.50 s (2.0 fps)")
    assert many.endswith("; 0 stale frames skipped")


def test_a_stalled_camera_ends_the_loop_cleanly(converted_run, monkeypatch, capsys):
    stalling = CountingCamera(interval=0.001, stall_after=4)
    monkeypatch.setattr(camera, "open_source",
                        lambda spec, width, height, timeout, loop: LatestFrame(stalling, timeout))
    start = time.perf_counter()
    code = main(["camera", str(model_file(converted_run)), "--source", "0", "--headless",
                 "--stall-timeout", "0.3"])
    assert time.perf_counter() - start < 10
    assert code == 1
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 4
    assert "delivered no frame for 0.3 s; stopping" in captured.err
    assert "Traceback" not in captured.err


def test_ctrl_c_ends_a_live_run_with_its_summary(converted_run):
    """Ctrl-C is how a headless camera run over ssh ends: the frames so far, then the summary."""
    import os
    import signal
    import subprocess
    import sys

    command = [sys.executable, "-m", "edgekit.cli", "camera", str(model_file(converted_run)),
               "--source", "synthetic", "--headless"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, preexec_fn=default_ctrl_c)
    # A run that ignores the Ctrl-C would stream frames for ever: kill it, and fail below.
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        lines = [process.stdout.readline() for _ in range(5)]
        os.killpg(process.pid, signal.SIGINT)  # the whole foreground group, as a terminal does
        # Read through the same buffered stream: communicate() would skip lines it holds.
        rest, err = process.stdout.read(), process.stderr.read()
        process.wait(timeout=60)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
    records = [json.loads(line) for line in lines + rest.splitlines()]
    assert process.returncode == 0
    assert [r["frame"] for r in records] == list(range(len(records)))
    summary = err.strip().splitlines()[-1]
    counted = int(summary.split("edgekit camera: ")[1].split(" frames in ")[0])
    # Whole frames: the one Ctrl-C cut short may have been output but not counted.
    assert len(records) - 1 <= counted <= len(records) and len(records) >= 5
    assert "(stopped by Ctrl-C)" in summary and "Traceback" not in err


def test_a_failing_camera_raises_camera_error():
    class Broken(CountingCamera):
        def read(self):
            raise OSError("device disconnected")

    latest = LatestFrame(Broken(0.0), stall_timeout=1.0)
    with pytest.raises(CameraError, match="fake camera failed: device disconnected"):
        latest.read()
    latest.close()


def test_window_mode_without_gui_support_says_use_headless(converted_run, capsys):
    pytest.importorskip("cv2")
    import cv2

    try:  # a full OpenCV build could open a window; this check is about headless builds
        cv2.namedWindow("probe")
        cv2.destroyAllWindows()
        pytest.skip("this OpenCV build has GUI support")
    except cv2.error:
        pass
    assert main(["camera", str(model_file(converted_run)), "--source", "synthetic",
                 "--max-frames", "2"]) == 2
    assert "--headless" in capsys.readouterr().err.strip().splitlines()[-1]


def test_bad_sources_and_flags(converted_run, tmp_path, capsys):
    model = str(model_file(converted_run))
    for argv, message in [
        (["--source", str(tmp_path / "missing.mp4")], "no such video file or folder"),
        (["--source", str(tmp_path)], f"{tmp_path}: no image files in this folder"),
        (["--source", "synthetic", "--max-frames", "0"], "--max-frames must be at least 1"),
        (["--source", "synthetic", "--stall-timeout", "0"], "--stall-timeout must be positive"),
        (["--source", "synthetic", "--threads", "0"], "--threads must be at least 1, got 0"),
    ]:
        assert main(["camera", model, "--headless", *argv]) == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_camera_that_is_not_there_is_one_line(converted_run, capfd):
    # No machine here has 97 cameras; OpenCV's own warnings about it (written from C++ to
    # file descriptor 2) are dropped, so our error is all the user reads.
    assert main(["camera", str(model_file(converted_run)), "--headless", "--source", "97"]) == 2
    assert capfd.readouterr().err.strip().splitlines() == ["edgekit: error: cannot open camera 97"]


def test_camera_module_runs_as_a_plain_script(converted_run):
    import subprocess
    import sys

    script = Path(camera.__file__)
    result = subprocess.run([sys.executable, str(script), str(model_file(converted_run)),
                             "--source", "synthetic", "--headless", "--max-frames", "3"],
                            capture_output=True, text=True, timeout=120, cwd=script.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.strip().splitlines()) == 3


def test_synthetic_source_cycles_frames():
    source = SyntheticSource(64, 48, distinct_frames=3)
    frames = [source.read() for _ in range(4)]
    assert frames[0].shape == (48, 64, 3) and frames[3] is frames[0]


class FakeGuiOpenCV:
    """Just enough of cv2 for ``camera.window``: a window the user closes after ``open_for``
    frames, its properties reported as the backend ``reports`` them (a function of whether the
    window is open and the property asked)."""

    WND_PROP_AUTOSIZE, WND_PROP_VISIBLE = 1, 4
    FONT_HERSHEY_SIMPLEX, LINE_AA = 0, 16
    error = RuntimeError

    def __init__(self, open_for, reports):
        self.open_for, self.reports, self.shown = open_for, reports, 0

    def putText(self, *args):
        pass

    def imshow(self, title, image):
        self.shown += 1

    def waitKey(self, delay):
        return -1  # no key pressed

    def getWindowProperty(self, title, prop):
        return self.reports(self.shown <= self.open_for, prop)


def gtk(is_open, prop):
    """GTK drops a closed window (-1 for every property) and never implements VISIBLE."""
    return 1.0 if is_open and prop == FakeGuiOpenCV.WND_PROP_AUTOSIZE else -1.0


def qt(is_open, prop):
    """Qt hides a closed window: it still exists, and VISIBLE reads 0."""
    return 1.0 if is_open or prop == FakeGuiOpenCV.WND_PROP_AUTOSIZE else 0.0


def neither(is_open, prop):
    """A build that implements neither property."""
    return -1.0


@pytest.mark.parametrize("reports,frames", [(gtk, 3), (qt, 3), (neither, 8)])
def test_closing_the_window_ends_the_run(converted_run, monkeypatch, capsys, reports, frames):
    # The window's close button used to be ignored: the next frame opened it again.
    fake = FakeGuiOpenCV(open_for=3, reports=reports)
    monkeypatch.setitem(sys.modules, "cv2", fake)
    assert main(["camera", str(model_file(converted_run)), "--source", "synthetic",
                 "--max-frames", "8"]) == 0
    assert f"{frames} frames" in capsys.readouterr().err.strip().splitlines()[-1]
    assert fake.shown == min(frames + 1, 8)


def test_a_source_with_nothing_to_classify_is_a_failure(converted_run, tmp_path, capsys):
    # It exited 0 with "0 frames", where edgekit classify exits 1 on the same folder.
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("a.jpg", "b.png"):
        (folder / name).write_bytes(b"not an image")
    assert main(["camera", str(model_file(converted_run)), "--source", str(folder),
                 "--headless"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines()[-1] == \
        f"edgekit camera: no frame classified from {folder}"
