"""The measurement tools (``python -m tools.NAME``) docs/results.md quotes: bad input is one
line and exit 2, as for ``edgekit``; the runtime tools measure a converted model."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# (tool and its arguments, what its one error line says); RUN is an empty folder.
BAD_INPUT = [
    (["tflite_size", "/no/such.tflite"], "no such file: /no/such.tflite"),
    (["tflite_size", "README.md"], "README.md: not a TFLite model"),
    (["tflite_size", "RUN"], "RUN: a folder without .tflite files"),
    (["runtime_overhead", "/no/such.tflite"], "/no/such.tflite: no such model file"),
    (["runtime_overhead", "--rounds", "0", "x.tflite"], "--rounds must be at least 1, got 0"),
    (["camera_loop", "--frames", "0", "x.tflite"], "--frames must be at least 1, got 0"),
    (["onnx_layout", "RUN"], "RUN: not a finished run directory (model.keras, config.json, "
                             "labels.txt missing)"),
    (["classify_accuracy", "/no/run", "/tmp"], "/no/run: no such run directory"),
    (["mediapipe_agreement", "/no/run", "--mediapipe-python", "python"],
     "/no/run: no such run directory"),
    (["train_throughput", "--data", "/no/data"], "data path /no/data does not exist"),
    (["train_step_speed", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
]


@pytest.mark.parametrize("command, said", BAD_INPUT, ids=lambda v: v[0] if isinstance(v, list)
                         else "")
def test_bad_input_is_one_line_and_exit_2(command, said, tmp_path):
    tool, *rest = command
    rest = [str(tmp_path) if arg == "RUN" else arg for arg in rest]
    said = said.replace("RUN", str(tmp_path))
    result = subprocess.run([sys.executable, "-m", f"tools.{tool}", *rest], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"{tool}: error: {said}"]
    assert result.stdout == ""


def test_runtime_tools_measure_a_converted_model(converted_run, tmp_path):
    from tools.camera_loop import main as camera_loop
    from tools.runtime_overhead import main as runtime_overhead

    run, _, _ = converted_run
    model = run / "artifacts" / "model_int8.tflite"
    overhead = tmp_path / "overhead.json"
    assert runtime_overhead([str(model), "--rounds", "2", "--calls", "3", "--threads", "1",
                             "--json", str(overhead)]) == 0
    (row,) = json.loads(overhead.read_text())
    assert row["model"] == "model_int8.tflite" and row["backend"] == "ai-edge-litert"
    assert row["bare_ms"]["median"] > 0 and row["ratio"]["median"] > 0
    # Frames smaller than the model's 32 x 32 input: the loop resizes them; the bare
    # interpreter is fed an input of its own size (this failed with a shape error before).
    loop = tmp_path / "loop.json"
    assert camera_loop([str(model), "--width", "16", "--height", "12", "--rounds", "2",
                        "--frames", "3", "--threads", "1", "--json", str(loop)]) == 0
    result = json.loads(loop.read_text())
    assert result["frame"] == "16x12"
    assert set(result["stage_ms"]) == {"capture", "preprocess", "inference", "output"}
    assert result["loop_rate_share_of_bare"]["median"] > 0
