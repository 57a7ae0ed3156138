"""Backend-agnostic model code: a run trained under JAX or PyTorch loads under TensorFlow and
gives the same predictions (the route from the GPU machine, which has no TensorFlow)."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent("""
    import json
    import sys
    import threading
    import keras
    import numpy as np
    from edgekit.cli import main
    from edgekit.train import checkpoint as epoch_progress
    data, out = sys.argv[1], sys.argv[2]
    on_main_thread = []  # per training batch: did the progress bar's hook run on the main thread
    counted = epoch_progress.EpochProgress.on_train_batch_end
    def recording(self, batch, logs=None):
        on_main_thread.append(threading.current_thread() is threading.main_thread())
        counted(self, batch, logs)
    epoch_progress.EpochProgress.on_train_batch_end = recording
    code = main(["train", "--data", data, "--out", out, "--epochs", "2", "--batch-size", "8",
                 "--arch", sys.argv[3]])
    assert code == 0, code
    with open(out + "/batch_hooks.json", "w") as handle:
        json.dump(on_main_thread, handle)
    assert keras.backend.backend() == sys.argv[4], keras.backend.backend()
    images = np.random.default_rng(0).random((6, 32, 32, 3)).astype("float32")
    np.save(out + "/probe.npy", images)
    model = keras.saving.load_model(out + "/model.keras")
    np.save(out + "/probe_predictions.npy", keras.ops.convert_to_numpy(model(images)))
""")


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("arch", ["seed_cnn", "resnet8"])
def test_model_trained_under_another_backend_predicts_the_same_under_tensorflow(
        tiny_tree, cache_dir, tmp_path, backend, arch):
    pytest.importorskip(backend)  # .ci/run installs both; see docs/testing.md
    out = tmp_path / f"{backend}-run"
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", CHILD, str(tiny_tree), str(out), arch, backend],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["versions"]["backend"] == backend and config["devices"] == ["cpu:0"]
    # 2 epochs of 4 batches (32 of the 33 training images); under JAX, Keras runs the progress
    # bar's batch hook in worker threads, so reading a step's loss never holds up the next step
    hooks = json.loads((out / "batch_hooks.json").read_text())
    assert len(hooks) == 8
    if backend == "jax":
        assert not any(hooks)

    import keras

    assert keras.backend.backend() == "tensorflow"
    model = keras.saving.load_model(out / "model.keras")
    images = np.load(out / "probe.npy")
    np.testing.assert_allclose(np.asarray(model(images)), np.load(out / "probe_predictions.npy"),
                               atol=1e-5, rtol=1e-4)
