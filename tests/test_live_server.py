"""``edgekit camera --serve``: the page in a real (headless) Chromium, the MJPEG stream, the
prediction feed, the token, the client limit, a port in use, and the end of a run."""
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import default_ctrl_c
from PIL import Image

from browser import Browser, find_browser
from edge_runtime.live_server import is_loopback, parse_serve_address, serve_token
from edgekit.cli import main

pytestmark = pytest.mark.slow
WATCHDOG_S = 120  # a run that never ends is killed and fails its test


def model_file(converted_run) -> Path:
    run, _, manifest = converted_run
    entry = next(v for v in manifest["variants"] if v["name"] == "int8")
    return run / "artifacts" / entry["file"]


@contextmanager
def serving(model: Path, *flags: str):
    """``edgekit camera MODEL --serve 127.0.0.1:0 FLAGS`` (synthetic frames unless FLAGS give
    a source) as a child process; yields (process, page URL, stderr lines so far)."""
    source = [] if "--source" in flags else ["--source", "synthetic", "--width", "64",
                                            "--height", "48"]
    serve = [] if "--serve" in flags else ["--serve", "127.0.0.1:0"]
    command = [sys.executable, "-m", "edgekit.cli", "camera", str(model), *source, *serve,
               *flags]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, preexec_fn=default_ctrl_c)
    watchdog = threading.Timer(WATCHDOG_S, process.kill)
    watchdog.start()
    err = []
    try:
        for line in process.stderr:
            err.append(line)
            if "serving http" in line:
                break
        else:
            raise AssertionError("no URL printed: " + "".join(err))
        yield process, line.split("serving ")[1].split()[0], err
    finally:
        watchdog.cancel()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def stop(process, err: list) -> str:
    """Ctrl-C the run; its stderr, which must end with the summary and exit 0."""
    os.killpg(process.pid, signal.SIGINT)
    rest = process.stderr.read()
    process.wait(timeout=60)
    text = "".join(err) + rest
    assert process.returncode == 0, text
    assert "(stopped by Ctrl-C)" in text.strip().splitlines()[-1], text
    return text


def url_of(page: str, path: str) -> str:
    base, _, query = page.partition("?")
    return base.rstrip("/") + path + (f"?{query}" if query else "")


def mjpeg_parts(response, count: int) -> list[bytes]:
    """The first ``count`` JPEGs of a multipart stream, each checked against its headers."""
    assert response.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
    parts = []
    while len(parts) < count:
        assert response.readline() == b"--frame\r\n"
        headers = {}
        while (line := response.readline()) != b"\r\n":
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        data = response.read(int(headers["content-length"]))
        assert response.read(2) == b"\r\n"
        parts.append(data)
    return parts


def test_serve_addresses_tokens_and_loopback():
    assert parse_serve_address("8000") == ("127.0.0.1", 8000)
    assert parse_serve_address("0.0.0.0:8000") == ("0.0.0.0", 8000)
    assert parse_serve_address("[::1]:9000") == ("::1", 9000)
    for bad in ("", "http", "1.2.3.4:", "70000", "-1"):
        with pytest.raises(Exception, match="give PORT or HOST:PORT"):
            parse_serve_address(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert serve_token("127.0.0.1", None) is None
    made = serve_token("0.0.0.0", None)
    assert len(made) >= 16 and made != serve_token("0.0.0.0", None)
    assert serve_token("127.0.0.1", "given-token") == "given-token"


def test_the_page_in_chromium_shows_frames_and_the_label_classify_gives(converted_run,
                                                                          tmp_path):
    browser_path = find_browser()
    if browser_path is None:
        if os.environ.get("EDGEKIT_REQUIRE_BROWSER"):
            pytest.fail("EDGEKIT_REQUIRE_BROWSER is set and no Chromium is on PATH")
        pytest.skip("no Chromium here (.ci/run installs Debian's chromium)")
    run, _, _ = converted_run
    image = sorted((run.parent / "data" / "test" / "class2").iterdir())[0]
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / image.name).write_bytes(image.read_bytes())
    classify = subprocess.run([sys.executable, "-m", "edgekit.cli", "classify",
                               str(model_file(converted_run)), str(image), "--json"],
                              capture_output=True, text=True, check=True)
    expected = json.loads(classify.stdout.splitlines()[0])["label"]
    with serving(model_file(converted_run), "--source", str(folder), "--loop") as (
            process, page, err):
        browser = Browser(browser_path, str(tmp_path / "chromium-profile"))
        try:
            browser.open(page)
            # The page says so within a quarter of a second of the first frame (its timer),
            # so the test waits for the words, not for the frame alone.
            shown = browser.wait_for(
                "document.getElementById('video').naturalWidth > 0 && "
                "document.getElementById('video-state').textContent"
                ".startsWith('showing frames, ') && "
                "document.getElementById('video-state').textContent")
            assert shown.startswith("showing frames, ")
            assert browser.wait_for(
                f"document.getElementById('top1').textContent === {json.dumps(expected)}")
            fps = browser.wait_for("Number(document.getElementById('fps').textContent)")
            assert fps > 0
            rows = browser.evaluate("[...document.querySelectorAll('#labels tr')]"
                                    ".map(row => row.cells[0].textContent)")
            assert rows[0] == expected and len(rows) == 3
            for stage in ("capture", "preprocess", "inference"):
                float(browser.evaluate(f"document.getElementById('ms-{stage}').textContent"))
            screenshot = browser.screenshot()
        finally:
            browser.close()
        stop(process, err)
    picture = Image.open(io.BytesIO(screenshot))
    assert picture.size == (960, 640)
    # The video area is not blank: the frame's colours and the drawn labels.
    assert len(set(picture.crop((0, 60, 400, 400)).convert("RGB").getdata())) > 20
    target = os.environ.get("EDGEKIT_SCREENSHOT_DIR")
    if target:  # docs/images/camera-serve.png is made this way (docs/testing.md)
        (Path(target) / "camera-serve.png").write_bytes(screenshot)


def test_mjpeg_parts_are_jpegs_and_predictions_are_json(converted_run):
    with serving(model_file(converted_run)) as (process, page, err):
        with urllib.request.urlopen(url_of(page, "/stream.mjpg"), timeout=30) as response:
            for data in mjpeg_parts(response, 3):
                frame = Image.open(io.BytesIO(data))
                assert frame.format == "JPEG" and frame.width >= 320  # small frames enlarged
        with urllib.request.urlopen(url_of(page, "/predictions"), timeout=30) as response:
            assert response.headers["Content-Type"] == "text/event-stream"
            events = []
            while len(events) < 3:
                line = response.readline().decode()
                if line.startswith("data: "):
                    events.append(json.loads(line[len("data: "):]))
        for event in events:
            assert {"frame", "label", "score", "top_k", "fps", "ms"} <= set(event)
            assert set(event["ms"]) == {"capture", "preprocess", "inference"}
        assert events[1]["frame"] > events[0]["frame"]
        with urllib.request.urlopen(url_of(page, "/status.json"), timeout=30) as response:
            status = json.loads(response.read())
        assert status["model"] == model_file(converted_run).name
        assert status["backend"] == "ai-edge-litert" and status["source"] == "synthetic 64x48"
        assert status["frames"] > 0 and status["uptime_s"] >= 0
        for path, code in (("/etc/passwd", 404), ("/../model.keras", 404), ("/static/", 404)):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url_of(page, path), timeout=30)
            assert refused.value.code == code
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url_of(page, "/"), data=b"x"),
                                   timeout=30)
        assert refused.value.code == 405
        with urllib.request.urlopen(url_of(page, "/predictions"), timeout=30) as feed:
            stop(process, err)
            # Ctrl-C ended the feed too: what is left of it ends with the end event.
            assert feed.read().decode().rstrip().endswith("event: end\ndata: {}")


def test_off_loopback_every_route_needs_the_token(converted_run):
    with serving(model_file(converted_run), "--serve", "0.0.0.0:0") as (process, page, err):
        assert "?token=" in page
        token = page.split("?token=")[1]
        port = page.split(":")[2].split("/")[0]
        local = f"http://127.0.0.1:{port}"
        for path in ("/", "/stream.mjpg", "/predictions", "/status.json"):
            for query in ("", "?token=wrong"):
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(local + path + query, timeout=30)
                assert refused.value.code == 401
        with urllib.request.urlopen(f"{local}/status.json?token={token}", timeout=30) as ok:
            assert ok.status == 200
        bearer = urllib.request.Request(f"{local}/", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(bearer, timeout=30) as ok:
            assert b"<title>edgekit camera</title>" in ok.read()
        text = stop(process, err)
    assert text.count(token) == 1  # printed once


def test_over_the_client_limit_is_503_and_a_stalled_viewer_stops_nothing(converted_run):
    with serving(model_file(converted_run), "--max-clients", "2") as (process, page, err):
        # Two viewers that never read: the frames and the encodings go on regardless.
        stalled = [urllib.request.urlopen(url_of(page, "/stream.mjpg"), timeout=30)
                   for _ in range(2)]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url_of(page, "/status.json"), timeout=30)
        assert refused.value.code == 503
        assert b"--max-clients" in refused.value.read()
        stalled[0].close()
        before = after = None
        for _ in range(300):  # the closed slot is free once the server sees the close
            try:
                with urllib.request.urlopen(url_of(page, "/status.json"), timeout=30) as r:
                    status = json.loads(r.read())
            except urllib.error.HTTPError:
                continue
            if before is None:
                before = status["frames"]
            elif status["frames"] > before + 100:
                after = status["frames"]
                break
        assert after is not None, "the loop did not go on while a viewer stalled"
        stalled[1].close()
        stop(process, err)


def test_max_frames_ends_the_streams_and_the_run(converted_run, monkeypatch, capsys):
    """The run ends at --max-frames with viewers connected: each sees its response end."""
    from edge_runtime import camera
    from edge_runtime.frame_sources import SyntheticSource

    gate = threading.Event()

    class GatedSource(SyntheticSource):
        """Frames only once the viewers are connected."""

        def read(self):
            gate.wait(WATCHDOG_S)
            return super().read()

    monkeypatch.setattr(camera, "open_source", lambda *args: GatedSource(64, 48))
    codes = []
    run = threading.Thread(target=lambda: codes.append(main([
        "camera", str(model_file(converted_run)), "--max-frames", "50",
        "--serve", "127.0.0.1:0"])))
    run.start()
    err = ""
    try:
        while "serving http" not in err and run.is_alive():
            err += capsys.readouterr().err
        page = err.split("serving ")[1].split()[0]
        with urllib.request.urlopen(url_of(page, "/stream.mjpg"), timeout=30) as video, \
                urllib.request.urlopen(url_of(page, "/predictions"), timeout=30) as feed:
            assert feed.readline() == b": predictions of every classified frame\n"
            gate.set()
            events = feed.read().decode()   # to its end: the run ends the feed
            rest = video.read()
    finally:
        gate.set()
        run.join(WATCHDOG_S)
    assert codes == [0]
    assert events.rstrip().endswith("event: end\ndata: {}")
    assert 0 < events.count("data: {\"frame\"") <= 50
    assert rest.rstrip().endswith(b"--frame--")
    assert "edgekit camera: 50 frames in" in capsys.readouterr().err


def test_a_port_in_use_is_one_line_and_exit_2(converted_run, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["camera", str(model_file(converted_run)), "--source", "synthetic",
                     "--serve", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"--serve 127.0.0.1:{port}: the port is in use" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags, message", [
    (["--serve", "nope"], "give PORT or HOST:PORT"),
    (["--serve", "0", "--max-clients", "0"], "--max-clients"),
    (["--serve", "0", "--serve-fps", "0"], "--serve-fps must be above 0"),
    (["--serve", "0", "--token", "short"], "--token must be at least 8 characters"),
    (["--loop"], "--loop replays a folder or a video file"),
])
def test_bad_serve_flags_are_one_line(converted_run, flags, message, capsys):
    assert main(["camera", str(model_file(converted_run)), "--source", "synthetic",
                 *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
