"""Sharpness-aware minimization (train/sharpness.py): one step against its formula under each
backend it is written for, BatchNorm statistics from the unperturbed pass, and the backends and
setups it refuses."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edge_runtime.errors import UserError
from edgekit.train.distribute import DATA_PARALLEL, MIRRORED, SINGLE
from edgekit.train.sharpness import check_sam_backend

LEARNING_RATE = 0.1

# One SGD step of StudentTrainer on a linear softmax classifier (whose gradient numpy can write
# down) and on Dense -> BatchNorm (whose moving mean shows which weights the forward pass used).
CHILD = textwrap.dedent("""
    import json
    import sys
    import keras
    import numpy as np
    from edgekit.train.sharpness import StudentTrainer
    x, labels, kernel = (np.array(a, dtype="float32") for a in json.loads(sys.argv[1]))
    results = {"backend": keras.backend.backend()}
    for rho in (0.0, 0.5):
        inputs = keras.Input((x.shape[1],))
        hidden = keras.layers.Dense(labels.shape[1], use_bias=False, name="linear")(inputs)
        linear = keras.Model(inputs, keras.layers.Softmax()(hidden))
        normed = keras.layers.BatchNormalization(name="bn")(hidden)
        with_bn = keras.Model(inputs, keras.layers.Softmax()(normed))
        for name, student in (("linear", linear), ("bn", with_bn)):
            student.get_layer("linear").set_weights([kernel])
            trainer = StudentTrainer(student, sam_rho=rho)
            trainer.compile(optimizer=keras.optimizers.SGD(%r),
                            loss=keras.losses.CategoricalCrossentropy())
            trainer.train_on_batch(x, labels)
            results[f"{name}-{rho}"] = {
                "kernel": student.get_layer("linear").get_weights()[0].tolist(),
                "moving_mean": (student.get_layer("bn").moving_mean.numpy().tolist()
                                if name == "bn" else None)}
    print(json.dumps(results))
""" % LEARNING_RATE)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def gradient(x, labels, kernel):
    """d/dkernel of the mean cross-entropy of softmax(x @ kernel)."""
    return x.T @ (softmax(x @ kernel) - labels) / len(x)


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_sam_step_applies_the_gradient_taken_at_the_perturbed_weights(backend):
    pytest.importorskip(backend)  # .ci/run installs both; see docs/testing.md
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype("float32")
    labels = np.eye(3, dtype="float32")[rng.integers(0, 3, 8)]
    kernel = rng.normal(size=(4, 3)).astype("float32")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    argument = json.dumps([x.tolist(), labels.tolist(), kernel.tolist()])
    result = subprocess.run([sys.executable, "-c", CHILD, argument], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    steps = json.loads(result.stdout.strip().splitlines()[-1])
    assert steps["backend"] == backend

    first = gradient(x, labels, kernel)
    plain = kernel - LEARNING_RATE * first
    perturbed = kernel + 0.5 * first / np.linalg.norm(first)
    sharp = kernel - LEARNING_RATE * gradient(x, labels, perturbed)
    np.testing.assert_allclose(steps["linear-0.0"]["kernel"], plain, atol=1e-5)
    np.testing.assert_allclose(steps["linear-0.5"]["kernel"], sharp, atol=1e-5)
    assert np.abs(sharp - plain).max() > 100 * 1e-5  # far apart at that tolerance

    # BatchNorm's moving mean (momentum 0.99, from 0) moves once, by the batch mean of the
    # pre-normalization activations at the unperturbed weights
    expected_mean = 0.01 * (x @ kernel).mean(axis=0)
    for rho in ("0.0", "0.5"):
        np.testing.assert_allclose(steps[f"bn-{rho}"]["moving_mean"], expected_mean, atol=1e-5)


@pytest.mark.parametrize("backend, plan, message", [
    ("torch", SINGLE, "--sam needs the tensorflow or jax backend (KERAS_BACKEND=torch)"),
    ("tensorflow", MIRRORED, "--sam does not run under tf.distribute.MirroredStrategy"),
])
def test_sam_is_refused_where_its_step_is_not_written(backend, plan, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_sam_backend(0.05, backend, plan)
    check_sam_backend(0.0, backend, plan)  # without --sam anything goes
    check_sam_backend(0.05, "jax", DATA_PARALLEL)
