"""The heavy commands' start-up: TensorFlow's absl INFO notes dropped, its warnings and errors
kept, and a missing package reported as the extra to install, in one line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.cli import build_parser
from edgekit.common.quiet_import import startup_notes_dropped
from edgekit.heavy_imports import missing_package_message
from edgekit.train.cli import config_from_args

REPO = Path(__file__).resolve().parents[1]
NOTES = (b"WARNING: All log messages before absl::InitializeLog() is called are written to "
         b"STDERR\nI0000 00:00:1795645287.655524    6369 port.cc:153] oneDNN custom operations "
         b"are on.\nI0000 00:00:1795645287.655866    6369 cudart_stub.cc:31] Could not find "
         b"cuda drivers on your machine, GPU will not be used.\n")
KEPT = b"E0000 00:00:1795645287.7    6369 cuda_dnn.cc:8579] Unable to register cuDNN factory\n"


def test_startup_notes_are_dropped_and_the_rest_kept(capfd):
    with startup_notes_dropped():
        os.write(2, NOTES + KEPT)
        os.write(2, b"W0000 00:00:1795645287.8    6369 x.cc:1] a warning\n")
    assert capfd.readouterr().err == (KEPT + b"W0000 00:00:1795645287.8    6369 x.cc:1] a "
                                             b"warning\n").decode()
    os.write(2, NOTES)  # outside the block nothing is filtered: file descriptor 2 is back
    assert capfd.readouterr().err == NOTES.decode()


def test_what_the_block_raises_still_reaches_the_caller(capfd):
    with pytest.raises(RuntimeError, match="boom"):
        with startup_notes_dropped():
            os.write(2, b"Fatal: libcudart.so not found\n")
            raise RuntimeError("boom")
    assert capfd.readouterr().err == "Fatal: libcudart.so not found\n"


def test_missing_package_message_names_the_extra():
    error = ModuleNotFoundError("No module named 'tf2onnx'", name="tf2onnx")
    assert missing_package_message("convert", error) == (
        "edgekit convert needs tf2onnx, which is not installed here: "
        "pip install 'edgekit[convert]'")
    # Our own modules missing is a bug to show in full, and the runtime commands never
    # need the heavy stack.
    assert missing_package_message("convert", ModuleNotFoundError(name="edgekit.train.gone")) is None
    assert missing_package_message("classify", error) is None


def edgekit_without(packages: tuple[str, ...], argv: list[str]) -> subprocess.CompletedProcess:
    """``edgekit ARGV`` in a child Python in which ``packages`` cannot be imported."""
    code = f"""
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {packages!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Missing())
from edgekit.cli import main
sys.exit(main({argv!r}))
"""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_every_command_starts_without_tomllib():
    # Python 3.10, the oldest that pyproject.toml admits, has no tomllib: imported with the
    # study at start-up, it ended every command there, edgekit classify on a device included.
    # The study reads its grid files with the tomli package there instead.
    result = edgekit_without(("tomllib",), ["classify", "--help"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage: edgekit classify")


@pytest.mark.parametrize("argv, extra", [(["train", "--out", "RUN"], "train"),
                                         (["bench", "RUN"], "convert")])
def test_a_runtime_only_install_gets_one_line_for_a_heavy_command(tmp_path, argv, extra):
    # A Pi with `pip install "edgekit[runtime]"`: no Keras, no TensorFlow.
    argv = [str(tmp_path / "run") if arg == "RUN" else arg for arg in argv]
    if argv[0] == "bench":  # a run copied over from the training machine
        run = tmp_path / "run"
        run.mkdir()
        settings = config_from_args(build_parser().parse_args(["train", "--out", str(run)]))
        (run / "config.json").write_text(json.dumps({
            "settings": settings.to_dict(), "class_names": ["a", "b"],
            "input": {"shape": [32, 32, 3]}}))
        for name in ("model.keras", "labels.txt"):
            (run / name).write_text("")
    result = edgekit_without(("tensorflow", "keras"), argv)
    assert result.returncode == 2
    instead = ("; or measure the converted files alone, which needs only the runtime: edgekit "
               "bench RUN_DIR/artifacts" if argv[0] == "bench" else "")
    assert result.stderr.strip().splitlines() == [
        f"edgekit: error: edgekit {argv[0]} needs keras, which is not installed here: "
        f"pip install 'edgekit[{extra}]'{instead}"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == (
        ["config.json", "labels.txt", "model.keras", "run"] if argv[0] == "bench" else [])


@pytest.mark.parametrize("argv, error", [
    (["bench", "MISSING"], "MISSING: no such run directory"),
    (["convert", "EMPTY"], "EMPTY: not a finished run directory (model.keras, config.json, "
                           "labels.txt missing)"),
    (["evaluate", "EMPTY"], "EMPTY: not a finished run directory (model.keras, config.json, "
                            "labels.txt missing)"),
    (["train", "--data", "MISSING", "--out", "RUN"], "data path MISSING does not exist"),
    (["pipeline", "--data", "MISSING", "--out", "RUN"], "data path MISSING does not exist"),
    (["bench", "EMPTY", "--data", "MISSING"], "EMPTY: not a finished run directory"),
    # A damaged config.json ended every command that read it in a traceback (KeyError).
    (["convert", "DAMAGED"], "DAMAGED/config.json: damaged (no 'recipe'); edgekit train "
                             "writes it, so restore it or train the run again"),
    (["evaluate", "DAMAGED"], "DAMAGED/config.json: damaged (no 'recipe')"),
    (["bench", "DAMAGED"], "DAMAGED/config.json: damaged (no 'recipe')"),
    # Flag values come first, as the stages check them before reading anything.
    (["train", "--data", "MISSING", "--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["convert", "MISSING", "--variants", "int4"], "unknown --variants int4"),
    # An empty value (an unset shell variable) converted all ten variants.
    (["convert", "MISSING", "--variants", ""], "--variants '' names no variant: choose from"),
    (["pipeline", "--out", "RUN", "--variants", " , "], "--variants ' , ' names no variant"),
    (["study", "--out", "RUN", "--variants", ""], "--variants '' names no variant"),
    (["study", "--out", "RUN", "--archs", ""], "--archs '' names nothing"),
    (["study", "--out", "RUN", "--widths", " "], "--widths ' ' names nothing"),
    (["study", "--out", "RUN", "--threads", ""], "--threads must be comma-separated integers"),
    (["bench", "MISSING", "--threads", "two"], "--threads must be comma-separated integers"),
    # A Python without tflite-runtime failed every .tflite file's row after the other ones.
    (["bench", "MISSING", "--tflite-runtime-python", sys.executable],
     f"--tflite-runtime-python {sys.executable} cannot run the tflite-runtime worker "
     "(ModuleNotFoundError: No module named 'tflite_runtime')"),
    (["pipeline", "--out", "RUN", "--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["train", "--out", "RUN", "--split", "70/30"], "bad --split '70/30'"),
    (["train", "--out", "RUN", "--val-fraction", "2"], "--val-fraction must be between 0 and 0.5"),
    # A file as --cache-dir: the system's bare "File exists" after the progress bar began.
    (["train", "--out", "RUN", "--cache-dir", "README.md"],
     "--cache-dir README.md is a file, not a folder"),
    (["evaluate", "MISSING", "--cache-dir", "README.md"],
     "--cache-dir README.md is a file, not a folder"),
    # numpy refused a negative seed with a traceback, after the data were decoded.
    (["train", "--out", "RUN", "--seed", "-1"], "--seed must be between 0 and 4294967295, got -1"),
    (["convert", "EMPTY", "--seed", "4294967296"], "--seed must be between 0 and 4294967295"),
    # A study checks every cell's flags before its first cell: a bad value used to fail each
    # cell in turn and leave a study directory of failures behind.
    (["study", "--out", "RUN", "--archs", "vgg"], "bad grid: unknown archs ['vgg']"),
    (["study", "--out", "RUN", "--val-fraction", "2"], "--val-fraction must be between 0 and"),
    (["study", "--out", "RUN", "--epochs", "0", "--archs", "ds_cnn"],
     "--epochs must be at least 1, got 0"),
    (["study", "--out", "RUN", "--grid", "MISSING"], "MISSING: unreadable grid file (No such "
                                                     "file or directory)"),
])
def test_a_typo_is_answered_before_keras_is_imported(tmp_path, argv, error):
    # Keras' import takes 4 s on a 2-core CPU: a typo deserves its answer at once.
    (tmp_path / "empty").mkdir()
    damaged = tmp_path / "damaged"  # a run directory whose config.json is not a run's
    damaged.mkdir()
    for name, text in (("model.keras", "x"), ("labels.txt", "a\nb\n"),
                       ("config.json", '{"settings": {"epochs": 3}}')):
        (damaged / name).write_text(text)
    names = {"MISSING": str(tmp_path / "missing"), "EMPTY": str(tmp_path / "empty"),
             "RUN": str(tmp_path / "run"), "DAMAGED": str(damaged)}
    argv = [names.get(arg, arg) for arg in argv]
    code = f"""
import sys
from edgekit.cli import main
code = main({argv!r})
heavy = [m for m in sys.modules if m.split(".")[0] in ("keras", "tensorflow")]
sys.exit(code if not heavy else 99)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    for placeholder, path in names.items():
        error = error.replace(placeholder, path)
    assert result.stderr.startswith(f"edgekit: error: {error}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged", "empty"]  # nothing new
