"""int8-mixed: the search that keeps the worst layers in float until an accuracy budget is met,
the variant made by `edgekit convert --max-drop`, and bad budgets refused in one line."""
import json
import shutil

import pytest

from edgekit.cli import main
from edgekit.convert.mixed import search


def drops_of(table: dict, default: float = 9.0):
    """A validation drop for each set of float layers (looked up as a sorted tuple), and the
    sets asked for in order."""
    asked = []

    def drop_with(kept):
        asked.append(list(kept))
        return table.get(tuple(sorted(kept)), default)
    return drop_with, asked


def test_the_cheapest_layer_that_meets_the_budget_alone_wins():
    # The worst-ranked layer meets the budget too, but costs ten times the MACs.
    drop_with, asked = drops_of({(): 3.0, ("worst",): 0.05, ("cheap",): 0.1, ("other",): 1.0})
    kept, trials = search(["worst", "other", "cheap"], {"worst": 100, "other": 50, "cheap": 10},
                          drop_with, max_drop=0.1)
    assert kept == ["cheap"]
    assert asked == [[], ["worst"], ["other"], ["cheap"]]
    assert trials[0] == ([], 3.0)


def test_layers_are_kept_together_best_first_then_the_costly_ones_go_back_to_int8():
    table = {(): 3.0, ("a",): 1.0, ("b",): 2.0, ("c",): 0.5,
             ("a", "c"): 0.4, ("a", "b", "c"): 0.0, ("b", "c"): 0.1}
    drop_with, asked = drops_of(table)
    kept, trials = search(["a", "b", "c"], {"a": 1000, "b": 10, "c": 10}, drop_with,
                          max_drop=0.1)
    # Together in the order they bought back alone (c, a, b), until the budget is met; then
    # a, the costly one, goes back to int8 because b and c meet the budget without it.
    assert asked[4:] == [["c", "a"], ["c", "a", "b"], ["c", "b"]]
    assert sorted(kept) == ["b", "c"] and trials[-1] == (["c", "b"], 0.1)


def test_a_drop_of_exactly_the_budget_meets_it():
    from edgekit.convert.mixed import drop_points

    drop = drop_points(4179, 4174, 5000)  # five images of 5,000: 0.1 points
    assert drop == 0.1 and 100 * (4179 / 5000 - 4174 / 5000) > 0.1
    kept, _ = search(["a"], {}, drops_of({(): drop})[0], max_drop=0.1)
    assert kept == []


def test_a_file_already_within_budget_keeps_every_layer_int8():
    kept, trials = search(["a", "b"], {}, drops_of({(): 0.0})[0], max_drop=0.1)
    assert kept == [] and trials == [([], 0.0)]


def test_a_budget_that_cannot_be_met_ends_with_every_layer_float():
    drop_with, asked = drops_of({(): 5.0, ("a", "b", "c"): 2.0}, default=4.0)
    kept, trials = search(["a", "b", "c"], {}, drop_with, max_drop=0.1)
    assert sorted(kept) == ["a", "b", "c"] and trials[-1][1] == 2.0
    assert asked[-1] == kept  # the last file made is the one kept


def test_an_unmet_budget_is_said_with_the_share_of_macs_left_in_int8():
    from edgekit.convert.mixed import _search_facts
    from edgekit.convert.pipeline import _budget_line

    drop_with, _ = drops_of({(): 5.0, ("a", "b"): 2.0}, default=4.0)
    macs = {"a": 30, "b": 10, "c": 60}
    kept, trials = search(["a", "b"], macs, drop_with, max_drop=0.5)
    facts = _search_facts(kept, trials, ["a", "b"], macs, (None, [0] * 40), 0.9, 0.5)
    assert facts["budget_met"] is False and facts["int8_mac_share"] == 0.6
    assert _budget_line(facts) == (
        "2 of 2 layers kept in float (60.0% of the MACs in int8), validation drop 2.00 points "
        "(budget 0.5): budget not met even with every quantized layer in float")


@pytest.mark.parametrize("flags, message", [
    (["--max-drop", "-1"], "--max-drop must be accuracy points from 0 to 100, got -1.0"),
    (["--max-drop", "nan"], "--max-drop must be accuracy points from 0 to 100, got nan"),
    (["--variants", "int8-mixed"], "int8-mixed needs an accuracy budget: --max-drop POINTS"),
    (["--variants", "onnx-int8-mixed"],
     "onnx-int8-mixed needs an accuracy budget: --max-drop POINTS"),
])
def test_bad_budgets_are_one_line_errors(converted_run, flags, message, capsys):
    run, _, _ = converted_run
    assert main(["convert", str(run), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_max_drop_makes_the_mixed_variants_within_budget_on_validation(converted_run, tmp_path,
                                                                     capsys):
    from edge_runtime import Classifier

    source, _, _ = converted_run
    run = tmp_path / "run"
    shutil.copytree(source, run, ignore=shutil.ignore_patterns("artifacts"))
    assert main(["convert", str(run), "--variants", "int8,onnx-int8,int8-mixed,onnx-int8-mixed",
                 "--max-drop", "0", "--no-device-check"]) == 0
    out = capsys.readouterr().out
    manifest = json.loads((run / "artifacts" / "manifest.json").read_text())
    image = next((source.parent / "data" / "test" / "class2").iterdir())
    for name, report_of in (("int8-mixed", "int8"), ("onnx-int8-mixed", "onnx-int8")):
        entry = next(e for e in manifest["variants"] if e["name"] == name)
        mixed = entry["mixed"]
        assert mixed["budget_met"] and mixed["validation_drop_points"] <= 0
        assert mixed["validation_images"] == 12  # the validation split, never the test split
        # Every trial is on record, the first full int8, and among them the file kept.
        assert mixed["trials"][0]["float_layers"] == []
        assert {"float_layers": sorted(mixed["float_layers"]),
                "validation_drop_points": mixed["validation_drop_points"]} in [
            dict(trial, float_layers=sorted(trial["float_layers"]))
            for trial in mixed["trials"]]
        # The layers kept in float are layers of the variant's own per-layer report.
        report = json.loads((run / "artifacts" / "quantization" /
                             f"{report_of}.json").read_text())
        assert set(mixed["float_layers"]) <= {layer["tensor"] for layer in report["layers"]}
        assert 0 <= mixed["int8_mac_share"] <= 1
        if not mixed["float_layers"]:
            assert mixed["int8_mac_share"] == 1
        assert f"{name}: {len(mixed['float_layers'])} of {mixed['layers']} layers kept in " \
               f"float ({100 * mixed['int8_mac_share']:.1f}% of the MACs in int8), validation " \
               f"drop {mixed['validation_drop_points']:.2f}" in out
        assert entry["settings"]["max_drop"] == 0
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
    assert mixed["trials"][0]["validation_drop_points"] > 0  # full int8 loses answers
    assert mixed["budget_met"] and mixed["validation_drop_points"] <= 0
    # The outlier layer and its reader, which would quantize its output again: no more.
    assert sorted(layer.split("/")[1] for layer in mixed["float_layers"]) == ["mixed_1",
                                                                             "outlier_1"]
    assert content[4:8] == b"TFL3"
