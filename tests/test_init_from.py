"""--init-from: a run starts from a finished run's weights, or says in one line why it can't."""
import argparse
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from edgekit.cli import main
from edgekit.pipeline import add_pipeline_arguments, pipeline_settings
from edgekit.train.finished_run import start_from
from edgekit.train.models import build_model

pytestmark = pytest.mark.slow


def kernels(model):
    """The convolution and dense kernels: what a near-zero learning rate leaves unchanged
    (BatchNorm's moving statistics move with every batch whatever the rate)."""
    return [v.numpy() for v in model.weights if v.path.endswith("kernel")]


def test_a_run_starts_from_a_finished_runs_weights(tiny_tree, cache_dir, tmp_path, capsys):
    common = ["--data", str(tiny_tree), "--batch-size", "8"]
    first = tmp_path / "first"
    assert main(["train", *common, "--epochs", "2", "--out", str(first)]) == 0
    trained = keras.saving.load_model(first / "model.keras")

    fresh = build_model("seed_cnn", (32, 32, 3), 3, 1.0)
    start_from(fresh, str(first), ["class0", "class1", "class2"])
    for copied, original in zip(fresh.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(copied, original)

    # an epoch at a negligible rate ends where the first run ended: training began from it
    second = tmp_path / "second"
    assert main(["train", *common, "--epochs", "1", "--lr", "1e-12", "--out", str(second),
                 "--init-from", str(first)]) == 0
    settings = json.loads((second / "config.json").read_text())["settings"]
    assert settings["init_from"] == str(first.resolve())
    continued = keras.saving.load_model(second / "model.keras")
    for after, before in zip(kernels(continued), kernels(trained), strict=True):
        np.testing.assert_allclose(after, before, atol=1e-6)
    capsys.readouterr()

    for flags, message in ((["--arch", "resnet8"], "differs from this run's"),
                           (["--width", "0.5"], "pass the same --arch and --width"),
                           (["--init-from", str(tmp_path / "none")], "no such run directory")):
        argv = ["train", *common, "--epochs", "1", "--out", str(tmp_path / "bad"),
                "--init-from", str(first), *flags]
        assert main(argv) == 2
        error = capsys.readouterr().err.strip()
        assert message in error and "\n" not in error
        assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.partial").exists()


def test_the_pipeline_passes_init_from_to_its_train_stage(tmp_path):
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "next"), "--init-from", "runs/first"])
    assert pipeline_settings(args).train.init_from == str(Path("runs/first").resolve())
