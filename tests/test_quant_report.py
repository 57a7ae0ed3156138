"""The per-layer quantization report: a layer built to quantize badly is found, on TFLite (each
layer's own error) and ONNX (accumulated error); the conversion writes the reports; the
int16x8 variant runs in our runtime; the benchmark report says what XNNPACK took."""
import json

import numpy as np
import pytest

from edgekit.benchmarks.report import _delegation
from edgekit.convert.quant_report import error_metrics


def outlier_model():
    """plain conv -> "outlier" conv whose channel 0 is a constant 5000 (its seven other
    channels are left a step or two of the 256 steps of a 0..5000 range) -> a 1x1 conv that ignores
    channel 0 -> pooling -> softmax."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name="image")
    plain = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="plain")(inputs)
    outlier = keras.layers.Conv2D(8, 1, activation="relu", name="outlier")(plain)
    mixed = keras.layers.Conv2D(8, 1, activation="relu", name="mixed")(outlier)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(mixed)
    outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(pooled)
    model = keras.Model(inputs, outputs)
    kernel, bias = model.get_layer("outlier").get_weights()
    kernel[..., 0], bias[0] = 0.0, 5000.0
    model.get_layer("outlier").set_weights([kernel, bias])
    kernel, bias = model.get_layer("mixed").get_weights()
    kernel[:, :, 0, :] = 0.0
    model.get_layer("mixed").set_weights([kernel, bias])
    return model


@pytest.fixture(scope="module")
def images():
    generator = np.random.default_rng(0)
    return (generator.uniform(-1, 1, (40, 8, 8, 3)).astype(np.float32),
            generator.uniform(-1, 1, (12, 8, 8, 3)).astype(np.float32))


def test_the_layer_with_an_outlier_channel_is_ranked_first_in_tflite(images):
    from edgekit.convert.quant_report import tflite_layers
    from edgekit.convert.tflite_variants import int8_converter

    calibration, probe = images
    layers = tflite_layers(int8_converter(outlier_model(), calibration, "float32",
                                             "float32"), probe)
    by_rank = sorted(layers, key=lambda layer: layer["damage_rank"])
    assert "outlier" in by_rank[0]["tensor"], [layer["tensor"] for layer in by_rank]
    worst = by_rank[0]
    assert worst["channel_snr_db"] < 20 and worst["scale"] > 10  # 5000 / 255 per step
    plain = next(layer for layer in layers if "plain" in layer["tensor"])
    assert plain["channel_snr_db"] > worst["channel_snr_db"] + 15
    # The crushed channels hardly move the whole tensor's SNR: the constant channel holds
    # nearly all of its energy, exactly represented.
    assert worst["snr_db"] > worst["channel_snr_db"] + 10
    for layer in layers:
        assert {"rmse_relative", "snr_db", "cosine", "channel_snr_db", "scale",
                "zero_point", "op"} <= set(layer)


def test_onnx_errors_show_the_outlier_layer_too(images, tmp_path):
    from edgekit.convert import onnx_variants
    from edgekit.convert.quant_report import onnx_layers

    calibration, probe = images
    float_model = onnx_variants.float32(outlier_model())
    layers = onnx_layers(float_model, onnx_variants.int8_qdq(float_model, calibration), probe,
                         tmp_path)
    snr = {layer["tensor"]: layer["channel_snr_db"] for layer in layers}
    outlier = next(value for name, value in snr.items() if "outlier" in name)
    plain = next(value for name, value in snr.items() if "plain" in name)
    assert outlier < 20 < plain, snr


def test_file_against_file_errors_show_the_outlier_layer(images):
    # How the quantization-aware files are measured: an integer file against a float file of
    # the same network, operator by operator.
    from edgekit.convert import tflite_variants
    from edgekit.convert.quant_report import tflite_file_layers

    calibration, probe = images
    model = outlier_model()
    layers = tflite_file_layers(tflite_variants.full_int8(model, calibration),
                                tflite_variants.float32(model), probe)
    snr = {layer["tensor"]: layer["channel_snr_db"] for layer in layers}
    outlier = next(value for name, value in snr.items() if "outlier" in name)
    plain = next(value for name, value in snr.items() if "plain" in name)
    assert outlier < 20 < plain, snr
    assert all(layer["scale"] > 0 for layer in layers)


def test_error_metrics_on_known_tensors():
    reference = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    same = error_metrics(reference, reference)
    assert same["rmse_relative"] == 0 and same["cosine"] == pytest.approx(1.0)
    assert same["snr_db"] == 100.0 and same["channel_snr_db"] == 100.0
    noisy = error_metrics(reference, reference + np.array([0.1, 0.0]))
    # Channel 0 carries all of the error: 10 log10(10 / 0.03) = 25.2 dB; channel 1 none.
    assert noisy["channel_snr_db"] == pytest.approx((25.23 + 100) / 2, abs=0.01)
    assert noisy["rmse_relative"] == pytest.approx(np.sqrt(0.03 / 6) / 3)


def test_the_conversion_writes_each_integer_variants_layer_report(converted_run):
    run, code, manifest = converted_run
    assert code == 0
    folder = run / "artifacts" / "quantization"
    for name in ("int8", "int8-per-tensor", "onnx-int8", "qat-int8", "qat-int8-per-tensor"):
        entry = next(e for e in manifest["variants"] if e["name"] == name)
        assert entry["quantization_report"]["file"] == f"quantization/{name}.json"
        layers = json.loads((folder / f"{name}.json").read_text())["layers"]
        assert sorted(layer["damage_rank"] for layer in layers) == list(
            range(1, len(layers) + 1))
        assert [w["tensor"] for w in entry["quantization_report"]["worst"]] == [
            layer["tensor"] for layer in sorted(layers, key=lambda x: x["damage_rank"])[:3]]
    report = (folder / "REPORT.md").read_text()
    assert "## int8" in report and "## onnx-int8" in report and "## qat-int8" in report
    assert (folder / "snr_per_layer.png").stat().st_size > 1000


def test_int16x8_runs_in_our_runtime(converted_run):
    from edge_runtime import Classifier

    run, _, manifest = converted_run
    entry = next(e for e in manifest["variants"] if e["name"] == "int16x8")
    assert entry["checks"]["top1_agreement"] >= 0.9
    classifier = Classifier(run / "artifacts" / entry["file"])
    image = next((run.parent / "data" / "test" / "class1").iterdir())
    assert classifier.classify(image).label == "class1"
    details = classifier.model.interpreter.get_tensor_details()
    assert any(np.dtype(d["dtype"]) == np.int16 for d in details)


def row(variant, precision, ms, xnnpack=None):
    return {"variant": variant, "precision": precision, "format": "tflite", "error": None,
            "runtime": "ai-edge-litert", "threads": 2, "tta": "none",
            "latency_median_ms": ms, "xnnpack": xnnpack}


def test_the_report_says_what_xnnpack_took_and_flags_a_quantized_file_no_faster():
    rows = [row("float32", "float32", 0.10, {"operators": 19, "delegated": 15,
                                             "not_delegated": ["SHAPE"]}),
            row("int8", "int8", 0.03, {"operators": 15, "delegated": 10,
                                       "not_delegated": ["SHAPE", "SOFTMAX"]}),
            row("int16x8", "int16x8", 0.40, {"operators": 3, "delegated": 0,
                                             "not_delegated": ["CONV_2D", "CONV_2D", "ADD"]}),
            row("int8-per-tensor", "int8", 0.12, {"operators": 15, "delegated": 12,
                                                  "not_delegated": ["CONV_2D", "SHAPE"]})]
    text = "\n".join(_delegation(rows))
    assert "| int8 | ai-edge-litert | 10/15 | SHAPE, SOFTMAX | 3.33x |  |" in text
    assert ("| int16x8 | ai-edge-litert | 0/3 | CONV_2D, ADD | 0.25x | **not faster than "
            "float32**: XNNPACK took none of its operators (no DELEGATE node): all on the "
            "interpreter's own kernels |") in text
    assert ("| int8-per-tensor | ai-edge-litert | 12/15 | CONV_2D, SHAPE | 0.83x | **not faster "
            "than float32**: XNNPACK left CONV_2D to the interpreter's own kernels |") in text
