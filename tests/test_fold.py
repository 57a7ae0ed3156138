"""BatchNorm folding gives the same function with fewer layers, and leaves what it must."""
import numpy as np

from convert.fold import fold_batchnorm
from train.models import build_model


def randomise_batchnorm(model, seed, negative_scale=False):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            gamma = rng.uniform(0.5, 2.0, gamma.shape)
            if negative_scale:
                gamma[0] = -1.0
            layer.set_weights([gamma, rng.normal(0, 0.5, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2.0, var.shape)])


def test_seed_cnn_folds_every_batchnorm_exactly():
    model = build_model("seed_cnn", (32, 32, 3), 10, 1.0)
    randomise_batchnorm(model, 0)
    folded, count = fold_batchnorm(model)
    kinds = [type(layer).__name__ for layer in folded.layers]
    assert count == 3 and "BatchNormalization" not in kinds
    assert kinds.count("Rescaling") == 2  # the last shift went into the Dense bias
    x = np.random.default_rng(1).random((16, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(model(x)), atol=2e-6)


def test_negative_scale_blocks_are_left_alone():
    model = build_model("seed_cnn", (32, 32, 3), 10, 1.0)
    randomise_batchnorm(model, 0, negative_scale=True)
    folded, count = fold_batchnorm(model)
    assert count == 0
    x = np.random.default_rng(2).random((4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(model(x)), atol=2e-6)


def test_resnet8_has_nothing_to_fold():
    model = build_model("resnet8", (32, 32, 3), 10, 1.0)
    assert fold_batchnorm(model)[1] == 0
