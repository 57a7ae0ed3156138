"""int8-mixed: the search that keeps the worst layers in float until an accuracy budget is met,
the variant made by `edgekit convert --max-drop`, and bad budgets refused in one line."""
import json
import shutil

import pytest

from edgekit.cli import main
from edgekit.convert.mixed import search


def drops_of(table: dict):
    """A validation drop for each set of float layers, looked up by how many there are."""
    asked = []

    def drop_with(kept):
        asked.append(list(kept))
        return table[len(kept)]
    return drop_with, asked


def test_the_search_adds_the_worst_layers_in_order_until_the_budget_is_met():
    drop_with, asked = drops_of({0: 3.0, 1: 1.2, 2: 0.05, 3: 0.0})
    kept, drops = search(["worst", "second", "third"], drop_with, max_drop=0.1)
    assert kept == ["worst", "second"] and drops == [3.0, 1.2, 0.05]
    assert asked == [[], ["worst"], ["worst", "second"]]


def test_a_file_already_within_budget_keeps_every_layer_int8():
    kept, drops = search(["a", "b"], drops_of({0: 0.0})[0], max_drop=0.1)
    assert kept == [] and drops == [0.0]


def test_a_budget_that_cannot_be_met_ends_with_every_layer_float():
    kept, drops = search(["a", "b", "c"], drops_of({0: 5.0, 1: 4.0, 2: 3.0, 3: 2.0})[0],
                         max_drop=0.1)
    assert kept == ["a", "b", "c"] and drops[-1] == 2.0 > 0.1


@pytest.mark.parametrize("flags, message", [
    (["--max-drop", "-1"], "--max-drop must be accuracy points from 0 to 100, got -1.0"),
    (["--max-drop", "nan"], "--max-drop must be accuracy points from 0 to 100, got nan"),
    (["--variants", "int8-mixed"], "int8-mixed needs an accuracy budget: --max-drop POINTS"),
])
def test_bad_budgets_are_one_line_errors(converted_run, flags, message, capsys):
    run, _, _ = converted_run
    assert main(["convert", str(run), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_max_drop_makes_int8_mixed_within_budget_on_validation(converted_run, tmp_path, capsys):
    from edge_runtime import Classifier

    source, _, _ = converted_run
    run = tmp_path / "run"
    shutil.copytree(source, run, ignore=shutil.ignore_patterns("artifacts"))
    assert main(["convert", str(run), "--variants", "int8,int8-mixed", "--max-drop", "0",
                 "--no-device-check"]) == 0
    out = capsys.readouterr().out
    manifest = json.loads((run / "artifacts" / "manifest.json").read_text())
    entry = next(e for e in manifest["variants"] if e["name"] == "int8-mixed")
    mixed = entry["mixed"]
    assert mixed["budget_met"] and mixed["validation_drop_points"] <= 0
    assert mixed["validation_images"] == 12  # the validation split, never the test split
    assert len(mixed["drops_by_step"]) == len(mixed["float_layers"]) + 1
    # The layers kept in float are the worst of the int8 report, in its order.
    report = json.loads((run / "artifacts" / "quantization" / "int8.json").read_text())
    ranked = [layer["tensor"] for layer in sorted(report["layers"],
                                                  key=lambda x: x["damage_rank"])]
    assert mixed["float_layers"] == ranked[:len(mixed["float_layers"])]
    assert f"layers kept in float, validation drop {mixed['validation_drop_points']:.2f}" in out
    assert entry["settings"]["max_drop"] == 0
    image = next((source.parent / "data" / "test" / "class2").iterdir())
    assert Classifier(run / "artifacts" / entry["file"]).classify(image).label == "class2"


def test_max_drop_keeps_the_layer_with_an_outlier_channel_in_float():
    import numpy as np

    from edgekit.convert.mixed import mixed_int8
    from test_quant_report import outlier_model

    model = outlier_model()
    generator = np.random.default_rng(1)
    calibration = generator.uniform(-1, 1, (40, 8, 8, 3)).astype(np.float32)
    images = generator.uniform(-1, 1, (60, 8, 8, 3)).astype(np.float32)
    # Labelled by the float model itself: Keras scores 100%, and every answer the quantized
    # file changes is a point lost.
    labels = np.argmax(model.predict(images, verbose=0), axis=1)
    content, mixed = mixed_int8(model, calibration, images[:20], (images, labels), 0.0)
    assert mixed["drops_by_step"][0] > 0  # full int8 loses answers
    assert mixed["budget_met"] and mixed["validation_drop_points"] <= 0
    assert "outlier" in mixed["float_layers"][0]
    assert content[4:8] == b"TFL3"
