"""``edgekit classify``: files, folders and globs in, one line (or JSON object) per image out,
bad files reported without stopping; and the runtime works with TensorFlow unimportable."""
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS
from PIL import Image

from edge_runtime.classifier import Classifier
from edge_runtime.interpreters import load_model
from edge_runtime.preprocess import load_pixels, scale_pixels
from edgekit.cli import main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def model_file(converted_run, name="int8") -> Path:
    run, _, manifest = converted_run
    entry = next(v for v in manifest["variants"] if v["name"] == name)
    return run / "artifacts" / entry["file"]


def json_lines(text: str) -> list:
    return [json.loads(line) for line in text.strip().splitlines()]


def test_json_lines_for_a_folder_match_the_conversion_stage(converted_run, capsys):
    run, _, _ = converted_run
    folder = run.parent / "data" / "test"
    assert main(["classify", str(model_file(converted_run)), str(folder), "--json",
                 "--top-k", "2"]) == 0
    records = json_lines(capsys.readouterr().out)
    files = sorted(folder.rglob("*.png"))
    assert [r["path"] for r in records] == [str(p) for p in files]
    for record in records:
        assert set(record) == {"path", "label", "score", "top_k"}
        assert [t["label"] for t in record["top_k"]][0] == record["label"]
        assert len(record["top_k"]) == 2
    # same answers as the conversion stage's own evaluation path (batched, float input)
    probabilities = load_model(model_file(converted_run)).predict(
        scale_pixels(np.stack([load_pixels(p, 32) for p in files])))
    assert [r["label"] for r in records] == [LABELS[i] for i in probabilities.argmax(1)]
    assert [r["score"] for r in records] == pytest.approx(probabilities.max(1).tolist(), abs=1e-6)


def test_tta_flip_classifies_with_the_mirror_image_averaged_in(converted_run, capsys):
    run, _, _ = converted_run
    folder = run.parent / "data" / "test"
    assert main(["classify", str(model_file(converted_run)), str(folder), "--json",
                 "--top-k", "1", "--tta", "flip"]) == 0
    out, err = capsys.readouterr()
    assert "averaged with its mirror image" in err
    pixels = np.stack([load_pixels(p, 32) for p in sorted(folder.rglob("*.png"))])
    model = load_model(model_file(converted_run))
    averaged = (model.predict(scale_pixels(pixels)) +
                model.predict(scale_pixels(pixels[:, :, ::-1]))) / 2
    records = json_lines(out)
    assert [r["label"] for r in records] == [LABELS[i] for i in averaged.argmax(1)]
    assert [r["score"] for r in records] == pytest.approx(averaged.max(1).tolist(), abs=1e-6)


def test_unknown_tta_is_refused(converted_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["classify", str(model_file(converted_run)), "x.png", "--tta", "rotate"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'rotate'" in capsys.readouterr().err


def test_bad_files_are_reported_and_the_rest_classified(converted_run, tmp_path, capsys):
    run, _, _ = converted_run
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    image = next((run.parent / "data" / "test").rglob("*.png"))
    (folder / "sub" / "good.png").write_bytes(image.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (folder / "notes.txt").write_text("ignored: folders are searched for image files only")
    Image.new("L", (50, 20), 128).save(folder / "gray.png")
    code = main(["classify", str(model_file(converted_run)), str(folder),
                 str(tmp_path / "missing.jpg"), str(tmp_path / "none-*.png"), "--json"])
    assert code == 1
    captured = capsys.readouterr()
    records = {Path(r["path"]).name: r for r in json_lines(captured.out)}
    assert set(records) == {"broken.jpg", "gray.png", "good.png", "missing.jpg", "none-*.png"}
    assert "not a readable image" in records["broken.jpg"]["error"]
    assert records["missing.jpg"] == {"path": str(tmp_path / "missing.jpg"),
                                      "error": "no such file"}
    assert records["good.png"]["label"] in LABELS and records["gray.png"]["label"] in LABELS
    assert "classified 2 image(s), 3 failed" in captured.err
    assert "Traceback" not in captured.err
    # Plain lines name the file once.
    assert main(["classify", str(model_file(converted_run)), str(tmp_path / "missing.jpg")]) == 1
    assert capsys.readouterr().out == f"{tmp_path / 'missing.jpg'}: error: no such file\n"


def test_globs_and_plain_output(converted_run, capsys):
    run, _, _ = converted_run
    pattern = str(run.parent / "data" / "test" / "class1" / "*.png")
    assert main(["classify", str(model_file(converted_run, "onnx-float32")), pattern,
                 "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    for line in lines:
        path, ranked = line.split(": ")
        assert Path(path).parent.name == "class1"
        assert len(ranked.split(", ")) == 3
    # A pattern that matches nothing says so, rather than "no such file".
    unmatched = str(run.parent / "data" / "test" / "class1" / "*.PNG")
    assert main(["classify", str(model_file(converted_run)), unmatched]) == 1
    assert capsys.readouterr().out == \
        f"{unmatched}: error: no file matches this pattern (case-sensitive)\n"


def test_a_counter_on_the_terminal_when_the_answers_go_to_a_file(converted_run, tmp_path,
                                                                   capsys, monkeypatch):
    import edge_runtime.progress_line as progress_line

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    images = sorted((converted_run[0].parent / "data" / "test" / "class1").glob("*.png"))[:2]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    clock = iter(range(100))  # a second between any two looks at the clock: every update shows
    monkeypatch.setattr(progress_line.time, "monotonic", lambda: next(clock))
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["classify", str(model_file(converted_run)), str(broken), *map(str, images),
                 "--json"]) == 1
    counter = "edgekit: classifying: "
    assert f"\r{counter}0/3\r{counter}1/3, 1 failed\r{counter}2/3, 1 failed" \
           f"\r{' ' * len(counter + '2/3, 1 failed')}\redgekit: classified 2 image(s), " \
           "1 failed" in terminal.getvalue()
    assert "\r" not in capsys.readouterr().out  # the answers themselves stay clean
    # Ctrl-C wipes the counter before the "interrupted" line.
    terminal.seek(0)
    terminal.truncate(0)

    def interrupted(self, image, top_k):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(Classifier, "classify", interrupted)
        assert main(["classify", str(model_file(converted_run)), *map(str, images),
                     "--json"]) == 130
    assert terminal.getvalue().endswith(
        f"\r{counter}0/2\r{' ' * len(counter + '0/2')}\redgekit: interrupted\n")
    # With the answers on the terminal they are the progress: no counter.
    terminal.seek(0)
    terminal.truncate(0)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert main(["classify", str(model_file(converted_run)), *map(str, images)]) == 0
    assert "\r" not in terminal.getvalue()


def test_a_folder_from_a_mac_classifies_its_photos_only(converted_run, tmp_path, capsys):
    # A folder copied from macOS onto a USB stick holds "._<name>" twins (resource forks with
    # an image's extension) and hidden folders: none of them is a photo to classify.
    image = next((converted_run[0].parent / "data" / "test" / "class1").glob("*.png"))
    shutil.copy(image, tmp_path / "photo.png")
    (tmp_path / "._photo.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (tmp_path / ".thumbnails").mkdir()
    shutil.copy(image, tmp_path / ".thumbnails" / "photo.png")
    assert main(["classify", str(model_file(converted_run)), str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(tmp_path / "photo.png")]


def test_a_folder_of_browser_downloads_classifies_its_jfif_photos(converted_run, tmp_path,
                                                                  capsys):
    # Browsers on Windows save JPEGs as .jfif (or .jpe): a folder search passed them over.
    image = next((converted_run[0].parent / "data" / "test" / "class1").glob("*.png"))
    for name in ("download.jfif", "old.JPE"):
        Image.open(image).save(tmp_path / name, format="JPEG")
    (tmp_path / "notes.txt").write_text("not a photo")
    assert main(["classify", str(model_file(converted_run)), str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(tmp_path / "download.jfif"),
                                                        str(tmp_path / "old.JPE")]


class PipedInput:
    """Standard input as a pipe (or a terminal) brings it: bytes under ``buffer``."""

    def __init__(self, data: bytes, terminal: bool = False):
        self.buffer = io.BytesIO(data)
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def test_an_image_piped_in_as_path_dash(converted_run, monkeypatch, capsys):
    # rpicam-still -o - | edgekit classify MODEL -: the Pi camera's still, never on disk.
    image = next((converted_run[0].parent / "data" / "test" / "class1").glob("*.png"))
    model = str(model_file(converted_run))
    assert main(["classify", model, str(image), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    monkeypatch.setattr(sys, "stdin", PipedInput(image.read_bytes()))
    assert main(["classify", model, "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {**expected, "path": "-"}
    monkeypatch.setattr(sys, "stdin", PipedInput(b"not an image"))
    assert main(["classify", model, "-"]) == 1
    assert capsys.readouterr().out == "-: error: not a readable image (no image format recognised)\n"
    for piped, message in ((PipedInput(b""), "standard input brought no image"),
                           (PipedInput(b"", terminal=True), "but none is piped in")):
        monkeypatch.setattr(sys, "stdin", piped)
        assert main(["classify", model, "-"]) == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_full_disk_is_one_line_and_other_system_errors_keep_their_traceback(monkeypatch,
                                                                                capsys):
    import errno

    import edge_runtime.classify_command as command

    def disk_full(args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(command, "run_classify", disk_full)
    assert main(["classify", "model.tflite", "photo.jpg"]) == 2
    assert capsys.readouterr().err == "edgekit: error: No space left on device\n"

    def bug(args):
        raise OSError(errno.EBADF, "Bad file descriptor")  # ours to fix, not the user's

    monkeypatch.setattr(command, "run_classify", bug)
    with pytest.raises(OSError, match="Bad file descriptor"):
        main(["classify", "model.tflite", "photo.jpg"])


def test_user_errors_are_one_line(converted_run, tmp_path, capsys):
    image = str(next((converted_run[0].parent / "data" / "test").rglob("*.png")))
    for argv, message in [
        (["classify", str(tmp_path / "nope.tflite"), image], "no such model file"),
        (["classify", str(model_file(converted_run)), image, "--backend", "onnxruntime"],
         "runs .onnx files"),
        (["classify", str(model_file(converted_run)), image, "--threads", "0"],
         "--threads must be at least 1, got 0"),
        (["classify", str(model_file(converted_run)), image, "--top-k", "0"],
         "--top-k must be at least 1, got 0"),
        # A folder without a single image file: not "0 images classified" and exit 1.
        (["classify", str(model_file(converted_run)), str(tmp_path)],
         f"no image files in {tmp_path}"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("edgekit: error:") and message in err[-1]


BLOCK_TENSORFLOW = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras",
                                  "tensorflow_model_optimization"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize("program", [["edgekit.cli", "classify"],
                                     ["edge_runtime.classify_command"]])
@pytest.mark.parametrize("unbuffered", [True, False])
def test_output_closed_early_ends_quietly(converted_run, program, unbuffered):
    """`edgekit classify ... | head -1`: no traceback when the reader goes away, whether the
    lines fail as they are printed (PYTHONUNBUFFERED) or in the buffer's last flush (Python's
    own way with a pipe), under the CLI and the device's module alike."""
    import os

    run, _, _ = converted_run
    command = [sys.executable, "-m", *program, str(model_file(converted_run)),
               str(run.parent / "data" / "test")]
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    # A pipe whose reader is gone before the first line, so the first write fails for certain
    # (a reader that closes after a line races the writer, which may have written all by then).
    read_end, write_end = os.pipe()
    os.close(read_end)
    result = subprocess.run(command, stdout=write_end, stderr=subprocess.PIPE, cwd=REPO,
                            text=True, env=env)
    os.close(write_end)
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr
    assert result.returncode == 141


def test_runtime_and_classify_command_work_without_tensorflow(converted_run):
    run, _, _ = converted_run
    image = next((run.parent / "data" / "test" / "class2").glob("*.png"))
    code = BLOCK_TENSORFLOW + f"""
from edge_runtime.classifier import Classifier
from edgekit.cli import main
for name in ({str(model_file(converted_run))!r}, {str(model_file(converted_run, 'onnx-int8'))!r}):
    print(Classifier(name).classify({str(image)!r}).label)
assert main(["classify", {str(model_file(converted_run))!r}, {str(image)!r}, "--json"]) == 0
heavy = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")]
assert not heavy, heavy
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == lines[1] == json.loads(lines[2])["label"] == "class2"
    # Only our own lines: LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
    # on each model load is dropped.
    assert [line for line in result.stderr.splitlines()
            if not line.startswith("edgekit: ")] == []


def test_file_names_cannot_forge_lines_or_reach_the_terminal(converted_run, tmp_path, capsys):
    # A newline in a name forged a result line in the plain output, and escape bytes reached
    # the terminal; --json was already safe.
    run = converted_run[0]
    folder = tmp_path / "photos"
    folder.mkdir()
    image = next((run.parent / "data" / "test" / LABELS[0]).glob("*.png"))
    forged = "a\nforged.png: class9 1.000\x1b[2J.png"
    shutil.copy(image, folder / forged)
    (folder / "bad\x1b[31m.png").write_bytes(b"not an image")
    assert main(["classify", str(model_file(converted_run)), str(folder)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all("\x1b" not in line for line in out)
    assert any(line.startswith(f"{folder}/a\\nforged.png: class9 1.000\\x1b[2J.png: ")
               for line in out)
    assert f"{folder}/bad\\x1b[31m.png: error: not a readable image (no image format " \
           "recognised)" in out
    assert main(["classify", str(model_file(converted_run)), str(folder), "--json"]) == 1
    paths = {json.loads(line)["path"] for line in capsys.readouterr().out.splitlines()}
    assert paths == {str(folder / forged), str(folder / "bad\x1b[31m.png")}
