"""Recipes and what they turn into: overrides, the optimizers (weight decay on kernels only) and
the warm-up + cosine schedule."""
import json

import numpy as np
import pytest

from edge_runtime.errors import UserError
from edgekit.cli import main
from edgekit.train.optim import WarmupCosine, make_optimizer
from edgekit.train.recipes import resolve_recipe


def test_overrides_replace_only_what_is_given():
    recipe = resolve_recipe("fast", optimizer="sgd", learning_rate=0.1, epochs=None)
    assert (recipe.optimizer, recipe.learning_rate) == ("sgd", 0.1)
    assert recipe.epochs == resolve_recipe("fast").epochs
    with pytest.raises(UserError, match="unknown --recipe 'slow'"):
        resolve_recipe("slow")


def test_warmup_then_cosine_to_zero():
    schedule = WarmupCosine(peak=0.1, warmup_steps=10, total_steps=110)
    rates = [float(schedule(step)) for step in (0, 9, 10, 60, 110, 200)]
    np.testing.assert_allclose(rates, [0.01, 0.1, 0.1, 0.05, 0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("name, kind", [("adam", "Adam"), ("adamw", "AdamW"), ("sgd", "SGD")])
def test_each_optimizer_is_built(name, kind):
    optimizer = make_optimizer(resolve_recipe("fast", optimizer=name), steps_per_epoch=10)
    assert type(optimizer).__name__ == kind
    if name == "sgd":
        assert optimizer.nesterov and optimizer.momentum == pytest.approx(0.9)


def test_unknown_optimizer_is_a_user_error():
    with pytest.raises(UserError, match="use adam, adamw or sgd"):
        make_optimizer(resolve_recipe("fast", optimizer="lion"), steps_per_epoch=10)


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_weight_decay_shrinks_kernels_and_spares_biases(name):
    import keras

    recipe = resolve_recipe("fast", optimizer=name, schedule="constant", learning_rate=0.1,
                            weight_decay=0.5)
    layer = keras.layers.Dense(2, bias_initializer="ones")
    layer.build((None, 3))
    kernel_before = np.array(layer.kernel)
    optimizer = make_optimizer(recipe, steps_per_epoch=1)
    zeros = [keras.ops.zeros_like(v) for v in (layer.kernel, layer.bias)]
    optimizer.apply_gradients(zip(zeros, [layer.kernel, layer.bias]))
    # with a zero gradient only the decay moves the weights: kernel * (1 - lr * wd)
    np.testing.assert_allclose(np.array(layer.kernel), kernel_before * 0.95, rtol=1e-5)
    np.testing.assert_allclose(np.array(layer.bias), [1.0, 1.0])


@pytest.mark.slow
def test_optimizer_flag_reaches_the_run_config(tiny_tree, cache_dir, tmp_path):
    out = tmp_path / "sgd"
    assert main(["train", "--data", str(tiny_tree), "--out", str(out), "--epochs", "1",
                 "--batch-size", "8", "--optimizer", "sgd", "--lr", "0.05"]) == 0
    recipe = json.loads((out / "config.json").read_text())["settings"]["recipe"]
    assert (recipe["optimizer"], recipe["learning_rate"]) == ("sgd", 0.05)
    assert 0.0 <= json.loads((out / "metrics.json").read_text())["test_accuracy"] <= 1.0


def test_pipeline_and_study_pass_on_every_recipe_flag(tmp_path):
    import argparse
    from dataclasses import fields

    from edgekit.cli import build_parser
    from edgekit.pipeline import pipeline_settings
    from edgekit.study import train_keys
    from edgekit.train.cli import add_train_settings
    from edgekit.train.recipes import DEFAULT_RECIPE, RECIPES, Recipe

    recipe_dests = {field.name for field in fields(Recipe)} | {"recipe", "lr", "sam"}
    recipe_flags = [action.option_strings[0]
                    for action in add_train_settings(argparse.ArgumentParser())
                    if action.dest in recipe_dests]
    assert "--sam" in recipe_flags and "--teacher" in recipe_flags
    values = {"--recipe": "seed", "--optimizer": "adam", "--teacher": "runs/t",
              "--label-smoothing": "0.5", "--distill-weight": "0.5", "--warmup-epochs": "1"}
    for flag in recipe_flags:
        args = build_parser().parse_args(["pipeline", "--out", str(tmp_path / "r"), flag,
                                          values.get(flag, "3")])
        assert pipeline_settings(args).train.recipe != RECIPES[DEFAULT_RECIPE], flag
    assert {flag[2:] for flag in recipe_flags} <= set(train_keys())
