"""BatchNorm folding gives the same function with fewer layers, and leaves what it must."""
import numpy as np
import pytest

from edgekit.convert.fold import fold_batchnorm
from edgekit.train.models import build_model


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


def make_dead(bn, unit: int) -> float:
    """Give BN's ``unit`` the statistics of a unit that never varied in training (mean 0,
    variance ~0); returns its beta, the constant it then outputs."""
    gamma, beta, mean, variance = bn.get_weights()
    mean[unit], variance[unit] = 0.0, 1e-40
    bn.set_weights([gamma, beta, mean, variance])
    return float(beta[unit])


def test_seed_cnn_folds_every_batchnorm_exactly():
    model = build_model("seed_cnn", (32, 32, 3), 10, 1.0)
    randomise_batchnorm(model, 0)
    folded, count = fold_batchnorm(model)
    kinds = [type(layer).__name__ for layer in folded.layers]
    assert count == 3 and "BatchNormalization" not in kinds
    assert kinds.count("Rescaling") == 2  # the last shift went into the Dense bias
    x = np.random.default_rng(1).random((16, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(model(x)), atol=2e-6)


def test_negative_scales_fold_with_a_sign_and_stay_before_the_pooling():
    model = build_model("seed_cnn", (32, 32, 3), 10, 1.0)
    randomise_batchnorm(model, 0, negative_scale=True)
    folded, count = fold_batchnorm(model)
    assert count == 3 and "BatchNormalization" not in [type(l).__name__ for l in folded.layers]
    signs = [np.asarray(l.scale) for l in folded.layers if type(l).__name__ == "Rescaling"]
    # every block keeps its Rescaling (a negated channel cannot pass the max-pooling), and the
    # per-channel factors left are exactly +-1, which int8 represents without error
    assert len(signs) == 3 and all(set(np.unique(s)) <= {-1.0, 1.0} for s in signs)
    assert signs[0][0] == -1.0
    x = np.random.default_rng(2).random((4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(model(x)), atol=2e-6)


def test_dead_units_become_constants_instead_of_huge_scales():
    # A unit whose ReLU never fires has BN moving variance ~0, so gamma / sqrt(eps) makes its
    # scale ~30x the others'; folded, its channel is zeroed and BN's beta is its constant output.
    model = build_model("seed_cnn", (32, 32, 3), 10, 1.0)
    randomise_batchnorm(model, 0)
    conv = model.get_layer("conv3")
    kernel, bias = conv.get_weights()
    kernel[..., 5], bias[5] = 0.0, -1.0  # ReLU(-1) = 0 on every input
    conv.set_weights([kernel, bias])
    make_dead(model.get_layer("bn3"), 5)
    folded, count = fold_batchnorm(model)
    assert count == 3
    folded_kernel, folded_bias = folded.get_layer("conv3").get_weights()
    assert not folded_kernel[..., 5].any() and folded_bias[5] == 0.0
    x = np.random.default_rng(3).random((8, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(model(x)), atol=2e-6)


def test_resnet8_has_nothing_to_fold():
    model = build_model("resnet8", (32, 32, 3), 10, 1.0)
    assert fold_batchnorm(model)[1] == 0


@pytest.mark.parametrize("arch, count", [("ds_cnn", 11), ("resnet8", 7)])
def test_batchnorm_after_a_convolution_folds_into_it_exactly(arch, count):
    # What quantization-aware training needs: tfmot would keep these BNs as a Mul and an Add.
    model = build_model(arch, (32, 32, 3), 10, 0.5)
    randomise_batchnorm(model, 4, negative_scale=True)
    folded, folded_count = fold_batchnorm(model, into_convolutions=True)
    assert folded_count == count
    assert "BatchNormalization" not in [type(layer).__name__ for layer in folded.layers]
    x = np.random.default_rng(5).random((8, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(model(x)), atol=2e-5)


def test_a_dead_unit_before_the_relu_becomes_its_constant():
    model = build_model("ds_cnn", (32, 32, 3), 10, 0.5)
    randomise_batchnorm(model, 6)
    beta = make_dead(model.get_layer("block2_pointwise_bn"), 3)
    folded, _ = fold_batchnorm(model, into_convolutions=True)
    kernel, bias = folded.get_layer("block2_pointwise").get_weights()
    assert not kernel[..., 3].any() and bias[3] == pytest.approx(beta)
