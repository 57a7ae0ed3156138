"""edge_runtime.Classifier on the tiny converted run: every format, labels and normalization
from metadata or manifest, integrity check, preprocessing identical to training, bad input."""
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edge_runtime.classifier import PYTHON_RANKING_MAX_CLASSES, Classifier, Prediction
from edge_runtime.errors import ImageReadError, UserError
from edge_runtime.interpreters import ModelLoadError, load_model
from edge_runtime.manifest import IntegrityError
from edge_runtime.model_metadata import MetadataError
from edge_runtime.preprocess import load_pixels, scale_pixels

pytestmark = pytest.mark.slow

FORMATS = ["float32", "int8", "int8-mediapipe", "qat-int8", "onnx-float32", "onnx-int8"]


def artifact(run, manifest, name) -> Path:
    entry = next(v for v in manifest["variants"] if v["name"] == name)
    return run / "artifacts" / entry["file"]


def tiny_test_images(run) -> list:
    return sorted((run.parent / "data" / "test").rglob("*.png"))


@pytest.mark.parametrize("name", FORMATS)
def test_classify_matches_the_interpreter_on_scaled_pixels(converted_run, name):
    run, _, manifest = converted_run
    path = artifact(run, manifest, name)
    classifier = Classifier(path, threads=1)
    assert classifier.labels == LABELS and classifier.image_size == 32
    assert classifier.backend == ("onnxruntime" if name.startswith("onnx") else "ai-edge-litert")
    images = tiny_test_images(run)
    entry = next(v for v in manifest["variants"] if v["name"] == name)
    norm = entry["input_normalization"]
    expected = load_model(path).predict(
        scale_pixels(np.stack([load_pixels(p, 32) for p in images]), norm["mean"], norm["std"]))
    for image, row in zip(images, expected):
        prediction = classifier.classify(image, top_k=2)
        assert isinstance(prediction, Prediction)
        assert prediction.label == LABELS[int(row.argmax())]
        assert prediction.score == pytest.approx(float(row.max()), abs=1e-6)
        assert len(prediction.top_k) == 2 and prediction.top_k[0] == (prediction.label,
                                                                       prediction.score)
        assert prediction.top_k[0].score >= prediction.top_k[1].score


def test_batches_equal_single_images(converted_run):
    run, _, manifest = converted_run
    classifier = Classifier(artifact(run, manifest, "int8"))
    images = tiny_test_images(run)[:5]
    singles = [classifier.classify(p, top_k=3) for p in images]
    assert classifier.classify(images, top_k=3) == singles
    pixels = np.stack([load_pixels(p, 32) for p in images])
    assert classifier.classify(pixels, top_k=3) == singles
    assert classifier.classify([], top_k=3) == []
    assert len(classifier.classify(images[0], top_k=99).top_k) == len(LABELS)
    with pytest.raises(UserError, match="top_k"):
        classifier.classify(images[0], top_k=0)
    assert repr(classifier) == (f"Classifier({str(artifact(run, manifest, 'int8'))!r}, "
                                f"backend={classifier.backend!r}, classes={len(LABELS)}, "
                                "image_size=32, tta='none')")


@pytest.mark.parametrize("name", ["float32", "int8", "onnx-float32", "onnx-int8"])
def test_pixels_reach_the_model_as_scale_pixels_makes_them(converted_run, name):
    """predict_pixels' fast paths (a lookup table for TFLite, a buffer bound to the session
    for ONNX) give exactly what predict gives for scale_pixels' input, one image or a batch,
    and each call's answer is its own array (flip TTA holds one while making the next)."""
    run, _, manifest = converted_run
    classifier = Classifier(artifact(run, manifest, name))
    model = classifier.model
    # One image of each class: two of one class can get the same saturated int8 scores.
    images = tiny_test_images(run)
    pixels = np.stack([load_pixels(next(p for p in images if p.parent.name == label), 32)
                       for label in LABELS])
    scaled = scale_pixels(pixels, classifier.norm_mean, classifier.norm_std)
    singles = [model.predict(scaled[i:i + 1]) for i in range(3)]
    answers = [model.predict_pixels(pixels[i:i + 1]) for i in range(3)]
    assert not np.array_equal(singles[0], singles[1])
    for answer, single in zip(answers, singles):
        assert np.array_equal(answer, single)
    assert np.array_equal(model.predict_pixels(pixels), model.predict(scaled))


def test_ranking_puts_ties_in_class_order(converted_run):
    """int8 outputs take only 256 values, so equal scores are common: the top-k must rank
    them by class index, as argmax does (accuracy figures and classify's agree)."""
    run, _, manifest = converted_run
    classifier = Classifier(artifact(run, manifest, "int8"))
    tied = np.array([[0.25, 0.375, 0.375], [0.5, 0.25, 0.25], [0.125, 0.125, 0.75]], np.float32)
    classifier.model.predict_pixels = lambda pixels: tied[:len(pixels)]
    image = np.zeros((32, 32, 3), np.uint8)
    assert classifier.classify(image, top_k=3).top_k == [
        ("class1", 0.375), ("class2", 0.375), ("class0", 0.25)]
    ranked = classifier.classify(np.zeros((3, 32, 32, 3), np.uint8), top_k=2)
    assert [p.top_k for p in ranked] == [[("class1", 0.375), ("class2", 0.375)],
                                         [("class0", 0.5), ("class1", 0.25)],
                                         [("class2", 0.75), ("class0", 0.125)]]
    assert [p.label for p in ranked] == [LABELS[i] for i in tied.argmax(1)]
    # Past PYTHON_RANKING_MAX_CLASSES numpy ranks them, with the same order for ties.
    many = PYTHON_RANKING_MAX_CLASSES + 14
    classifier.labels = [f"c{i}" for i in range(many)]
    scores = np.zeros((1, many), np.float32)
    scores[0, [3, 40, many - 1]] = 0.5
    scores[0, many - 2] = 0.25
    classifier.model.predict_pixels = lambda pixels: scores
    assert [label for label, _ in classifier.classify(image, top_k=6).top_k] == [
        "c3", "c40", f"c{many - 1}", f"c{many - 2}", "c0", "c1"]


@pytest.mark.parametrize("name", ["int8", "onnx-float32"])
def test_flip_tta_averages_each_image_with_its_mirror_image(converted_run, name):
    run, _, manifest = converted_run
    plain = Classifier(artifact(run, manifest, name))
    flipped = Classifier(artifact(run, manifest, name), tta="flip")
    # Left half of one class's colour, right half of another's: the mirror is another image.
    images = np.stack([load_pixels(p, 32) for p in tiny_test_images(run)[::4]])
    halves = np.concatenate([images[:, :, :16], images[::-1, :, 16:]], axis=2)
    mirrored = halves[:, :, ::-1]
    assert not np.allclose(plain.probabilities(halves), plain.probabilities(mirrored))
    expected = (plain.probabilities(halves) + plain.probabilities(mirrored)) / 2
    assert flipped.probabilities(halves) == pytest.approx(expected, abs=1e-6)
    assert flipped.probabilities(mirrored) == pytest.approx(expected, abs=1e-6)
    top = flipped.classify(halves[0], top_k=1)
    assert top.label == LABELS[int(expected[0].argmax())]
    assert top.score == pytest.approx(float(expected[0].max()), abs=1e-6)
    with pytest.raises(UserError, match="unknown test-time augmentation 'rotate'"):
        Classifier(artifact(run, manifest, name), tta="rotate")


def test_inputs_of_every_kind_give_the_same_answer(converted_run, tmp_path):
    run, _, manifest = converted_run
    classifier = Classifier(artifact(run, manifest, "float32"))
    path = tiny_test_images(run)[0]
    pixels = load_pixels(path, 32)
    expected = classifier.classify(path)
    assert classifier.classify(str(path)) == expected
    assert classifier.classify(path.read_bytes()) == expected
    assert classifier.classify(Image.open(path)) == expected
    assert classifier.classify(pixels) == expected
    # a larger frame is cropped and shrunk like a file of the same pixels
    big = np.kron(pixels, np.ones((4, 4, 1), np.uint8))
    Image.fromarray(big).save(tmp_path / "big.png")
    assert classifier.classify(big) == classifier.classify(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match="uint8"):
        classifier.classify(pixels.astype(np.float32))
    # picamera2's default 4-channel frames: the error says how to pass their R, G, B.
    with pytest.raises(ImageReadError, match=r"shape \(32, 32, 4\): pass the R, G, B channels "
                                             r"\(frame\[\.\.\., :3\] for picamera2's XBGR8888\)"):
        classifier.classify(np.zeros((32, 32, 4), np.uint8))
    assert classifier.classify(np.dstack([pixels, np.full((32, 32), 255, np.uint8)])[..., :3]) \
        == expected
    with pytest.raises(ImageReadError, match=r"got shape \(32, 32, 5\)$"):
        classifier.classify(np.zeros((32, 32, 5), np.uint8))


def test_runtime_and_training_stage_build_identical_arrays(tmp_path, cache_dir, converted_run):
    """The same files through the training stage's loader and through the runtime."""
    from edgekit.train.data import load_source

    rng = np.random.default_rng(3)
    folder = tmp_path / "data"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "a/0.png")
    Image.fromarray(rng.integers(0, 256, (61, 47, 3), dtype=np.uint8)).save(
        folder / "a/1.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (300, 200), dtype=np.uint8)).save(folder / "b/0.png")
    Image.fromarray(rng.integers(0, 256, (40, 90, 4), dtype=np.uint8)).save(folder / "b/1.png")
    raw = load_source(str(folder), 32, cache_dir)
    run, _, manifest = converted_run
    classifier = Classifier(artifact(run, manifest, "float32"))
    files = sorted(folder.rglob("*.*"))
    runtime_pixels = np.stack([classifier.preprocess(p) for p in files])
    assert np.array_equal(runtime_pixels, raw.train.x)
    # and the float input the model sees is the training stage's scale_pixels, bit for bit
    assert np.array_equal(classifier.model.pixel_table[runtime_pixels], scale_pixels(raw.train.x))


def test_labels_come_from_the_manifest_when_the_file_has_no_metadata(converted_run, tmp_path):
    import onnx

    run, _, manifest = converted_run
    source = artifact(run, manifest, "onnx-float32")
    model = onnx.load(source)
    del model.metadata_props[:]
    bare = tmp_path / source.name
    onnx.save(model, bare)
    with pytest.raises(MetadataError, match="no manifest.json"):
        Classifier(bare)
    entry = dict(next(v for v in manifest["variants"] if v["name"] == "onnx-float32"))
    import hashlib

    entry["sha256"] = hashlib.sha256(bare.read_bytes()).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "variants": [entry]}))
    classifier = Classifier(bare)
    assert classifier.labels == LABELS and classifier.norm_std == 255.0


def test_an_onnx_file_with_a_fixed_batch(converted_run, tmp_path):
    """A user's ONNX file whose batch dimension is a number, not a name: one image at a
    time works, a batch is refused in one line (ONNX Runtime's own error before)."""
    import onnx

    run, _, manifest = converted_run
    source = artifact(run, manifest, "onnx-float32")
    model = onnx.load(source)
    for tensor in [*model.graph.input, *model.graph.output]:
        tensor.type.tensor_type.shape.dim[0].dim_value = 1
    fixed = tmp_path / source.name
    onnx.save(model, fixed)
    classifier, dynamic = Classifier(fixed), Classifier(source)
    images = np.stack([load_pixels(p, 32) for p in tiny_test_images(run)[:3]])
    assert classifier.classify(images[0]) == dynamic.classify(images[0])
    with pytest.raises(UserError, match=r"^this model cannot take a batch of 3 \(its input's "
                                        r"batch is fixed at 1\); classify one image at a time$"):
        classifier.classify(images)


def test_a_changed_file_is_refused(converted_run, tmp_path, capsys):
    from edgekit.cli import main

    run, _, manifest = converted_run
    copy = tmp_path / "artifacts"
    shutil.copytree(run / "artifacts", copy)
    model = copy / artifact(run, manifest, "int8").name
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="sha256 .* does not match manifest.json"):
        Classifier(model)
    assert main(["classify", str(model), str(tiny_test_images(run)[0])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "does not match manifest.json" in err[-1] and "Traceback" not in "\n".join(err)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable manifest"):
        Classifier(model)
    (copy / "manifest.json").write_text('{"variants": 3}')  # JSON, not a manifest: a TypeError
    with pytest.raises(UserError, match="unreadable manifest .its variants are not a list"):
        Classifier(model)


def test_the_integrity_check_is_never_skipped_silently(converted_run, tmp_path, capsys):
    from edgekit.cli import main

    run, _, manifest = converted_run
    copy = tmp_path / "artifacts"
    shutil.copytree(run / "artifacts", copy)
    model = copy / artifact(run, manifest, "int8").name
    image = str(tiny_test_images(run)[0])
    # An entry without a sha256: refused, unless the user accepts it unchecked.
    listed = json.loads((copy / "manifest.json").read_text())
    for entry in listed["variants"]:
        entry.pop("sha256", None)
    (copy / "manifest.json").write_text(json.dumps(listed))
    with pytest.raises(IntegrityError, match="lists it without a sha256"):
        Classifier(model)
    assert main(["classify", str(model), image]) == 2
    assert "--no-verify" in capsys.readouterr().err
    assert main(["classify", str(model), image, "--no-verify"]) == 0
    assert "not checked (manifest.json lists it without a sha256)" in capsys.readouterr().err
    # A modified copy under a name the manifest does not list, beside it: runs, with a warning.
    other = copy / "model_mine.tflite"
    other.write_bytes(model.read_bytes())
    assert main(["classify", str(other), image]) == 0
    assert f"warning: {other}: not checked (the manifest.json beside it does not list it)" in \
        capsys.readouterr().err


# Noise from a seeded generator: the same bytes every run, and the same test ids in every
# process that collects them (pytest-xdist's workers must agree).
NOISE = np.random.default_rng(0).bytes(2000)


@pytest.mark.parametrize("content, suffix, message", [
    (b"", ".tflite", "not a loadable TFLite model"),
    (b"TFL3" * 10, ".tflite", "not a loadable TFLite model"),
    (NOISE, ".tflite", "not a loadable TFLite model"),
    (b"", ".onnx", "not a loadable ONNX model"),
    (NOISE, ".onnx", "not a loadable ONNX model"),
    (b"123", ".pb", r"unknown model format \(expected .tflite or .onnx\)$"),
    # The run's own model, what a user tries first: told how to get a deployable file.
    (b"PK", ".keras", "expected .tflite or .onnx; a Keras model is turned into them by "
                      "edgekit convert RUN_DIR"),
], ids=["empty-tflite", "header-tflite", "noise-tflite", "empty-onnx", "noise-onnx", "pb",
        "keras"])
def test_bad_model_files(tmp_path, content, suffix, message):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message) as error:
        Classifier(path)
    assert str(path) in str(error.value)


def test_truncated_model_and_missing_paths(converted_run, tmp_path):
    run, _, manifest = converted_run
    for name in ("int8", "onnx-float32"):
        source = artifact(run, manifest, name)
        truncated = tmp_path / source.name
        truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        with pytest.raises(ModelLoadError, match="not a loadable"):
            Classifier(truncated)
    with pytest.raises(UserError, match="no such model file"):
        Classifier(tmp_path / "missing.tflite")
    with pytest.raises(UserError, match="a folder, not a model file: give one of the .tflite"):
        Classifier(tmp_path)
    # A copy through a FAT-formatted card may come out in capitals.
    shouting = tmp_path / "MODEL_INT8.TFLITE"
    shouting.write_bytes(artifact(run, manifest, "int8").read_bytes())
    assert Classifier(shouting).classify(np.zeros((32, 32, 3), np.uint8)).label in LABELS
    with pytest.raises(UserError, match="unknown backend"):
        Classifier(artifact(run, manifest, "int8"), backend="tensorflow")
    with pytest.raises(UserError, match="runs .onnx files"):
        Classifier(artifact(run, manifest, "int8"), backend="onnxruntime")


def test_model_with_an_input_the_runtime_cannot_feed(tmp_path):
    import keras
    import tensorflow as tf

    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, outputs))
    path = tmp_path / "mnist.tflite"
    path.write_bytes(converter.convert())
    with pytest.raises(ModelLoadError, match=r"input shape \(1, 28, 28, 1\) cannot be fed RGB"):
        Classifier(path)


def _png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height: a decompression bomb's calling card."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _write_odd_images(folder: Path) -> dict:
    folder.mkdir()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "good.jpg")
    jpeg = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (folder / "notes.jpg").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    (folder / "bomb.png").write_bytes(_png_header_claiming(60_000, 60_000))
    Image.fromarray(rgb[:, :, 0]).save(folder / "gray.png")
    Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])).save(folder / "rgba.png")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray((rgb[:, :, 0].astype(np.uint16) * 257)).save(folder / "deep16.png")
    return {"truncated.jpg": "not a readable image", "notes.jpg": "not a readable image",
            "empty.png": "not a readable image", "bomb.png": "pixel limit",
            "missing.png": "no such file"}


def test_bad_and_unusual_images(converted_run, tmp_path):
    run, _, manifest = converted_run
    classifier = Classifier(artifact(run, manifest, "int8"))
    failures = _write_odd_images(tmp_path / "images")
    for name, message in failures.items():
        with pytest.raises(ImageReadError, match=message) as error:
            classifier.classify(tmp_path / "images" / name)
        assert name in str(error.value)
    for name in ("good.jpg", "gray.png", "rgba.png", "palette.png", "deep16.png"):
        assert classifier.classify(tmp_path / "images" / name).label in LABELS
    # Said once, in our words: Pillow's repeat the name or show a BytesIO object's address.
    for source, name in ((tmp_path / "images" / "notes.jpg", tmp_path / "images" / "notes.jpg"),
                         (b"not an image", "<bytes>")):
        with pytest.raises(ImageReadError) as error:
            classifier.classify(source)
        assert str(error.value) == f"{name}: not a readable image (no image format recognised)"


@pytest.mark.parametrize("image, message", [
    (None, "got NoneType"), (42, "got int"), (bytearray(b"x"), "got bytearray"),
    (Image.new("RGB", (0, 0)), r"<PIL image>: empty image \(0 x 0 pixels\)"),
    (Image.new("RGB", (5, 0)), "empty image"),
    (np.zeros((0, 0, 3), np.uint8), r"got shape \(0, 0, 3\)"),
    ([None], "got NoneType")])
def test_every_unsupported_input_is_an_image_error(int8_classifier, image, message):
    # classify(None) raised a bare TypeError, and an empty PIL image was classified (as the
    # all-black picture) where an empty array was refused.
    with pytest.raises(ImageReadError, match=message):
        int8_classifier.classify(image)


@pytest.fixture(scope="module")
def int8_classifier(converted_run):
    run, _, manifest = converted_run
    return Classifier(artifact(run, manifest, "int8"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4000), prefix=st.sampled_from(
    [b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"RIFF"]))
def test_random_bytes_as_images_raise_only_image_errors(int8_classifier, data, prefix):
    try:
        prediction = int8_classifier.classify(prefix + data)
    except ImageReadError:
        return
    assert prediction.label in LABELS  # the rare random input that is a valid image


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".tflite", ".onnx"]),
       prefix=st.sampled_from([b"", b"\x1c\x00\x00\x00TFL3", b"\x08\x07\x12\x07"]))
def test_random_bytes_as_models_raise_only_runtime_errors(tmp_path, data, suffix, prefix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(prefix + data)
    with pytest.raises(UserError):
        Classifier(path)
