"""Conversion stage on a tiny model trained by the test: every variant, verified, hashed,
self-describing; and the errors a user sees for a bad run directory."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS

from edge_runtime.interpreters import load_model
from edge_runtime.model_metadata import info_from_properties, read_tflite_info
from edge_runtime.preprocess import load_pixels, scale_pixels
from edgekit.cli import main
from edgekit.convert.variants import BUDGETED, VARIANTS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def converted(converted_run):
    return converted_run


def entry(manifest, name):
    return next(v for v in manifest["variants"] if v["name"] == name)


def file_interpreter(run, manifest, name):
    """An interpreter on variant ``name``'s file, not allocated: it reports the file's own
    quantization (an allocated XNNPACK interpreter reports per-channel scales for
    fully-connected weights that the file stores per tensor)."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(run / "artifacts" / entry(manifest, name)["file"]))


def scales_per_tensor(run, manifest, name):
    """How many quantization scales each tensor of variant ``name``'s file stores."""
    tensors = file_interpreter(run, manifest, name).get_tensor_details()
    return [len(t["quantization_parameters"]["scales"]) for t in tensors]


def test_every_variant_is_produced_and_verified(converted):
    run, code, manifest = converted
    assert code == 0
    # Every variant but the one made only with an accuracy budget (tests/test_mixed.py).
    assert [v["name"] for v in manifest["variants"]] == [
        name for name in VARIANTS if name not in BUDGETED]
    for variant in manifest["variants"]:
        assert "error" not in variant, variant
        checks = variant["checks"]
        assert checks["probe_images"] == 12
        assert checks["top1_agreement"] >= 0.9
        if VARIANTS[variant["name"]].max_abs_diff is not None:
            assert checks["max_abs_diff"] <= VARIANTS[variant["name"]].max_abs_diff
    assert manifest["settings"]["calibration_size"] == 30
    assert manifest["source_model"]["sha256"] == hashlib.sha256(
        (run / "model.keras").read_bytes()).hexdigest()


def test_manifest_hashes_and_sizes_match_the_files(converted):
    run, _, manifest = converted
    for variant in manifest["variants"]:
        path = run / "artifacts" / variant["file"]
        assert path.stat().st_size == variant["bytes"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == variant["sha256"]
    assert not list((run / "artifacts").glob(".work-*"))


def test_artifacts_agree_with_keras_when_reloaded(converted):
    import keras

    run, _, manifest = converted
    model = keras.saving.load_model(run / "model.keras")
    pixels = np.stack([load_pixels(p, 32) for p in sorted((run.parent / "data" / "test").rglob("*.png"))])
    expected = np.asarray(model(scale_pixels(pixels)))
    for variant in manifest["variants"]:
        norm = variant["input_normalization"]
        got = load_model(run / "artifacts" / variant["file"]).predict(
            scale_pixels(pixels, norm["mean"], norm["std"]))
        assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.9, variant["name"]
        # float variants within their gate; post-training int8 close; QAT was fine-tuned, so
        # its weights (and probabilities) moved further from the Keras model's
        bound = VARIANTS[variant["name"]].max_abs_diff or (
            0.3 if variant["precision"] == "qat-int8" else 0.1)
        assert np.abs(got - expected).max() <= bound, variant["name"]


def test_int8_files_are_integer_and_small(converted):
    run, _, manifest = converted
    float_bytes = entry(manifest, "float32")["bytes"]
    for name in ("int8", "int8-per-tensor", "qat-int8", "qat-int8-per-tensor", "int8-mediapipe"):
        variant = entry(manifest, name)
        assert variant["bytes"] <= 0.30 * float_bytes, name
        tensors = load_model(run / "artifacts" / variant["file"]).interpreter.get_tensor_details()
        # every weight and activation is integer; only MediaPipe's float32 output is not
        floats = [t["name"] for t in tensors if t["dtype"] == np.float32]
        assert len(floats) == (1 if name == "int8-mediapipe" else 0), (name, floats)
        assert sum(t["dtype"] == np.int8 for t in tensors) > 10
    io = entry(manifest, "int8")["io"]
    assert io["input"]["dtype"] == "int8" and io["output"]["dtype"] == "int8"
    assert io["input"]["quantization"]["scale"] == pytest.approx(1 / 255, rel=1e-3)
    mediapipe = entry(manifest, "int8-mediapipe")["io"]
    assert mediapipe["input"]["dtype"] == "uint8" and mediapipe["output"]["dtype"] == "float32"
    assert mediapipe["input"]["quantization"] == {"scale": 1.0, "zero_point": 0}


@pytest.mark.parametrize("per_channel_name", ["int8", "qat-int8"])
def test_per_tensor_int8_keeps_one_scale_per_tensor_and_is_smaller(converted, per_channel_name):
    run, _, manifest = converted
    per_tensor_name = per_channel_name + "-per-tensor"

    per_channel = scales_per_tensor(run, manifest, per_channel_name)
    per_tensor = scales_per_tensor(run, manifest, per_tensor_name)
    assert max(per_channel) > 1 and max(per_tensor) == 1
    # each scale dropped saves its float32 scale and int64 zero point (12 bytes)
    saved = entry(manifest, per_channel_name)["bytes"] - entry(manifest, per_tensor_name)["bytes"]
    assert saved >= 0.9 * 12 * (sum(per_channel) - sum(per_tensor))


def test_metadata_round_trips(converted):
    run, _, manifest = converted
    import onnxruntime

    for variant in manifest["variants"]:
        path = run / "artifacts" / variant["file"]
        if variant["format"] == "tflite":
            info = read_tflite_info(path.read_bytes(), path.name)
        else:
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            info = info_from_properties(session.get_modelmeta().custom_metadata_map)
        assert info.labels == LABELS
        assert (info.norm_mean, info.norm_std) == (variant["input_normalization"]["mean"],
                                                   variant["input_normalization"]["std"])
        assert info.image_size == 32


def _mediapipe_python():
    """A Python with mediapipe: this one, or $EDGEKIT_MEDIAPIPE_PYTHON (its clashing pins need
    their own environment; .ci/run makes one)."""
    try:
        import mediapipe  # noqa: F401

        return sys.executable
    except ImportError:
        return os.environ.get("EDGEKIT_MEDIAPIPE_PYTHON")


MEDIAPIPE_CLIENT = Path(__file__).resolve().parents[1] / "tools" / "mediapipe_client.py"


@pytest.mark.skipif(not _mediapipe_python(), reason="mediapipe not installed (.ci/run installs it)")
def test_mediapipe_image_classifier_runs_the_file_unchanged(converted):
    run, _, manifest = converted
    model_file = run / "artifacts" / entry(manifest, "int8-mediapipe")["file"]
    images = sorted(str(p) for p in (run.parent / "data" / "test").rglob("*.png"))
    result = subprocess.run([_mediapipe_python(), str(MEDIAPIPE_CLIENT), str(model_file), *images],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    mediapipe_top = json.loads(result.stdout.strip().splitlines()[-1])
    ours = load_model(model_file).predict(
        np.stack([load_pixels(p, 32) for p in images]).astype(np.float32))
    assert [name for name, _ in mediapipe_top] == [LABELS[i] for i in ours.argmax(1)]


def test_variant_subset_and_unknown_variant(converted, tmp_path, capsys):
    run, _, _ = converted
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("artifacts"))
    assert main(["convert", str(copy), "--variants", "float16,onnx-float32"]) == 0
    manifest = json.loads((copy / "artifacts" / "manifest.json").read_text())
    assert [v["name"] for v in manifest["variants"]] == ["float16", "onnx-float32"]
    assert main(["convert", str(copy), "--variants", "float32", "--probe-size", "7"]) == 0
    manifest = json.loads((copy / "artifacts" / "manifest.json").read_text())
    assert [v["name"] for v in manifest["variants"]] == ["float32", "float16", "onnx-float32"]
    # Each entry keeps the settings it was made with (the sizes asked and the sizes drawn).
    made = {v["name"]: v["settings"] for v in manifest["variants"]}
    assert made["float32"]["probe_size"] == 7 and made["float32"]["probe_drawn"] == 7
    assert made["float16"]["probe_size"] == 500 and manifest["settings"]["probe_drawn"] == 7

    # a retrained model: entries and files made from the old one go
    import keras

    keras.saving.load_model(copy / "model.keras").save(copy / "model.keras")
    assert main(["convert", str(copy), "--variants", "float32"]) == 0
    manifest = json.loads((copy / "artifacts" / "manifest.json").read_text())
    assert [v["name"] for v in manifest["variants"]] == ["float32"]
    assert not (copy / "artifacts" / "model_float16.tflite").exists()

    assert main(["convert", str(copy), "--variants", "int4"]) == 2
    assert "unknown --variants int4" in capsys.readouterr().err
    before = (copy / "artifacts" / "manifest.json").read_text()
    assert main(["convert", str(copy), "--variants", "qat-int8", "--qat-learning-rate", "-1"]) == 2
    assert "--qat-learning-rate must be positive" in capsys.readouterr().err
    assert (copy / "artifacts" / "manifest.json").read_text() == before


def test_a_second_conversion_of_the_same_run_at_once_is_refused(converted, tmp_path,
                                                                 capsys):
    # Two conversions of one run at once each rewrote manifest.json with only their own
    # variants: files the manifest no longer listed.
    from edgekit.common.folder_lock import FolderLock

    run, _, _ = converted
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = (copy / "artifacts" / "manifest.json").read_text()
    with FolderLock() as other:
        other.take(copy)
        assert main(["convert", str(copy), "--variants", "float32"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"edgekit: error: {copy} is in use by another edgekit command right now: wait for it "
        "to end, or stop it first")
    assert (copy / "artifacts" / "manifest.json").read_text() == before
    assert not list((copy / "artifacts").glob(".work-*"))


@pytest.mark.parametrize("damage, message", [
    (lambda run: shutil.rmtree(run), "no such run directory"),
    (lambda run: (run / "model.keras").write_bytes(b"this is not a zip"), "not a loadable Keras model"),
    (lambda run: (run / "labels.txt").unlink(),
     "not a finished run directory (labels.txt missing)"),
    (lambda run: (run / "config.json").write_text((run / "config.json").read_text().replace(
        '"shape": [\n      32,\n      32,', '"shape": [\n      64,\n      64,')),
     "input shape (32, 32, 3) is not the run's (64, 64, 3)"),
])
def test_bad_run_directory(converted, tmp_path, capsys, damage, message):
    run, _, _ = converted
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("artifacts"))
    damage(copy)
    assert main(["convert", str(copy), "--variants", "float32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)
    assert not (copy / "artifacts" / "manifest.json").exists()


@pytest.mark.parametrize("content, reason", [
    (b"this is not a zip", "(not a .keras zip archive)"),  # Keras: "File not found"
    (None, "(ValueError: Expected a model.weights.h5 or model.weights.npz file.)"),
])
def test_a_damaged_model_is_one_line_for_every_command(converted, tmp_path, capsys, content,
                                                      reason):
    # bench, and train's --init-from and --teacher, ended in a traceback.
    run, _, _ = converted
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("artifacts"))
    model = copy / "model.keras"
    if content is None:  # a zip archive, but no model's
        with zipfile.ZipFile(model, "w") as archive:
            archive.writestr("config.json", "{}")
    else:
        model.write_bytes(content)
    data = str(run.parent / "data")
    for argv in (["evaluate", str(copy)], ["convert", str(copy), "--variants", "float32"],
                 ["bench", str(copy)],
                 ["train", "--data", data, "--out", str(tmp_path / "a"), "--init-from", str(copy)],
                 ["train", "--data", data, "--out", str(tmp_path / "b"), "--teacher", str(copy)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1] == \
            f"edgekit: error: {model}: not a loadable Keras model {reason}", argv
        assert "Traceback" not in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_failing_variant_is_reported_and_others_finish(converted, tmp_path, monkeypatch, capsys):
    from edgekit.convert import pipeline

    run, _, _ = converted
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("artifacts"))
    real = pipeline._build_in_child

    def broken(run_dir, variant, *args):
        if variant.name == "float16":
            raise RuntimeError("converter crashed")
        return real(run_dir, variant, *args)

    monkeypatch.setattr(pipeline, "_build_in_child", broken)
    assert main(["convert", str(copy), "--variants", "float16,float32"]) == 1
    manifest = json.loads((copy / "artifacts" / "manifest.json").read_text())
    assert "converter crashed" in entry(manifest, "float16")["error"]
    assert "error" not in entry(manifest, "float32")
    assert not (copy / "artifacts" / "model_float16.tflite").exists()
    assert "failed: float16" in capsys.readouterr().out


def test_a_collapsed_quantization_is_flagged():
    from edgekit.convert.verify import accuracy_warning

    checks = {"probe_images": 500, "probe_accuracy": 0.292, "keras_probe_accuracy": 0.866}
    assert accuracy_warning(checks) == (
        "29.2% top-1 on the 500 probe images against Keras' 86.6%: the quantization lost too "
        "much; compare the variants with edgekit bench")
    assert accuracy_warning({**checks, "probe_accuracy": 0.85}) is None  # 1.6 points: normal


def test_size_breakdown_accounts_for_every_byte(converted, capsys):
    import keras

    from tools.tflite_size import main as size_main
    from tools.tflite_size import size_breakdown
    from tools.tool_main import run_tool

    run, _, manifest = converted
    params = keras.saving.load_model(run / "model.keras", compile=False).count_params()
    float32 = size_breakdown(run / "artifacts" / entry(manifest, "float32")["file"])
    int8 = size_breakdown(run / "artifacts" / entry(manifest, "int8")["file"])
    for parts in (float32, int8):
        assert parts["weights"] + parts["quantization"] + parts["names"] + parts["rest"] \
            == parts["file"]
        assert parts["names"] > 0 and parts["rest"] > 0
    assert float32["quantization"] == 0 and float32["weights"] >= 4 * params * 0.9
    assert 0 < int8["quantization"] < int8["weights"] < float32["weights"] / 3
    assert run_tool(size_main, [str(run / "artifacts" / "missing.tflite")]) == 2
    assert "no such file" in capsys.readouterr().err
    # A folder stands for its .tflite files (a run's artifacts/ once said "no such file").
    assert run_tool(size_main, [str(run / "artifacts")]) == 0
    printed = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert printed == [str(run / "artifacts" / v["file"]) for v in sorted(
        manifest["variants"], key=lambda v: v["file"]) if v["file"].endswith(".tflite")]


def test_quantization_aware_ds_cnn_has_the_post_training_graph(converted, tmp_path, capfd):
    # ds_cnn's BNs follow convolutions; unfolded, the QAT file kept each as a Mul and an Add
    # (measured on CIFAR-10: twice the post-training file's latency).
    run, _, _ = converted
    data = run.parent / "data"
    ds_run = tmp_path / "ds_cnn"
    assert main(["train", "--data", str(data), "--out", str(ds_run), "--arch", "ds_cnn",
                 "--width", "0.25", "--epochs", "1", "--batch-size", "8"]) == 0
    capfd.readouterr()
    assert main(["convert", str(ds_run), "--variants", "int8,qat-int8-per-tensor",
                 "--qat-epochs", "1", "--calibration-size", "30"]) == 0
    # The fine-tuning child reports each epoch to the user, not only to its log.
    assert "[2/2] qat-int8-per-tensor: fine-tuning epoch 1/1 - " in capfd.readouterr().err
    manifest = json.loads((ds_run / "artifacts" / "manifest.json").read_text())

    def operators(name):
        return sorted(op["op_name"]
                      for op in file_interpreter(ds_run, manifest, name)._get_ops_details())

    assert operators("qat-int8-per-tensor") == operators("int8")
    assert "MUL" not in operators("int8") and "ADD" not in operators("int8")
    assert entry(manifest, "qat-int8-per-tensor")["batchnorm_folded"] == 11
    # and the file keeps the one range per weight tensor that the fine-tuning used
    assert max(scales_per_tensor(ds_run, manifest, "qat-int8-per-tensor")) == 1


def test_onnx_int8_needs_no_sympy(converted):
    """onnxruntime >= 1.32 no longer installs sympy, which its symbolic shape inference
    needs; a fresh `pip install .[convert]` has none (CI has it through torch), and the
    onnx-int8 variant failed there. Quantize with sympy unimportable."""
    run, _, manifest = converted
    float_model = run / "artifacts" / entry(manifest, "onnx-float32")["file"]
    script = ("import sys\n"
              "sys.modules['sympy'] = None  # import sympy now raises ImportError\n"
              "from pathlib import Path\n"
              "import numpy as np\n"
              "from edgekit.convert.onnx_variants import int8_qdq\n"
              f"model = Path({str(float_model)!r}).read_bytes()\n"
              "images = np.random.default_rng(0).random((8, 32, 32, 3), np.float32)\n"
              "print(len(int8_qdq(model, images)))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) > 100_000  # an int8 model of the 3-class seed_cnn
