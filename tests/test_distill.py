"""Knowledge distillation: the loss against a numpy reference, and a student trained from a
teacher run (then resumed), with the errors a wrong teacher gives."""
import json
import shutil

import keras
import numpy as np
import pytest
from conftest import interrupted_at_epoch

from edgekit.cli import main
from edgekit.train.distill import DistillationLoss


def targets(labels, teacher):
    """The loss's target layout: [one-hot labels | teacher probabilities]."""
    return np.concatenate([labels, teacher], axis=1)


def softened(p, temperature):
    z = np.log(p + 1e-7) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def reference_loss(labels, teacher, student, weight, temperature, smoothing):
    smoothed = labels * (1 - smoothing) + smoothing / labels.shape[1]
    hard = -(smoothed * np.log(np.clip(student, 1e-7, 1))).sum(axis=1)
    t, s = softened(teacher, temperature), softened(student, temperature)
    soft = (t * (np.log(t) - np.log(s))).sum(axis=1)
    return np.mean(weight * temperature ** 2 * soft + (1 - weight) * hard)


@pytest.mark.parametrize("weight, temperature", [(0.9, 4.0), (0.5, 1.0), (0.0, 2.0)])
def test_distillation_loss_matches_its_formula(weight, temperature):
    rng = np.random.default_rng(0)
    labels = np.eye(4, dtype=np.float32)[[0, 3, 1, 2, 2]]
    teacher = rng.dirichlet(np.ones(4), 5).astype(np.float32)
    student = rng.dirichlet(np.ones(4), 5).astype(np.float32)
    loss = DistillationLoss(4, weight, temperature, label_smoothing=0.1)
    value = float(loss(targets(labels, teacher), student))
    assert value == pytest.approx(reference_loss(labels, teacher, student, weight, temperature,
                                                 0.1), rel=1e-4)


def test_soft_term_vanishes_when_the_student_matches_the_teacher():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 2]]
    only_soft = DistillationLoss(3, weight=1.0, temperature=3.0)
    assert float(only_soft(targets(labels, probabilities), probabilities)) == \
        pytest.approx(0.0, abs=1e-5)


@pytest.mark.slow
def test_student_learns_from_a_teacher_run(tiny_tree, cache_dir, tmp_path, capsys):
    common = ["--data", str(tiny_tree), "--epochs", "2", "--batch-size", "8"]
    teacher = tmp_path / "teacher"
    assert main(["train", *common, "--out", str(teacher)]) == 0
    student = tmp_path / "student"
    # with sharpness-aware steps too: the Distiller is a StudentTrainer (train/sharpness.py)
    assert main(["train", *common, "--out", str(student), "--arch", "resnet8", "--width", "0.5",
                 "--teacher", str(teacher), "--distill-temperature", "2", "--sam", "0.05"]) == 0
    recipe = json.loads((student / "config.json").read_text())["settings"]["recipe"]
    assert recipe["teacher"] == str(teacher.resolve())
    assert (recipe["distill_weight"], recipe["distill_temperature"], recipe["sam_rho"]) == \
        (0.9, 2.0, 0.05)
    history = (student / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy") and len(history) == 3
    assert 0 <= json.loads((student / "metrics.json").read_text())["test_accuracy"] <= 1
    capsys.readouterr()

    # interrupted after its first epoch, the student resumes with the teacher's guidance
    resumed = tmp_path / "resumed"
    argv = ["train", *common, "--out", str(resumed), "--arch", "resnet8", "--width", "0.5",
            "--teacher", str(teacher), "--distill-temperature", "2", "--sam", "0.05"]
    with interrupted_at_epoch(1):
        assert main(argv) == 130
    # the checkpoint holds the student alone: the frozen teacher is reloaded from its run
    with np.load(tmp_path / "resumed.partial" / "checkpoint.npz") as saved:
        saved_model = sorted(k for k in saved.files if k.startswith("model_"))
    student_model = keras.saving.load_model(student / "model.keras")
    assert len(saved_model) == len(student_model.variables)
    assert main(["train", "--out", str(resumed), "--resume"]) == 0
    np.testing.assert_allclose(
        [float(line.split(",")[1]) for line in (resumed / "history.csv").read_text().split()[1:]],
        [float(line.split(",")[1]) for line in history[1:]], rtol=1e-3)
    capsys.readouterr()

    # a teacher of other classes, a missing one, a bad weight: one line each, nothing written
    other = tmp_path / "other"
    shutil.copytree(teacher, other)
    config = json.loads((other / "config.json").read_text())
    config["class_names"] = ["cat", "dog", "frog"]
    (other / "config.json").write_text(json.dumps(config))
    for flags, message in ((["--teacher", str(other)], "its classes (cat, dog, frog) differ"),
                           (["--teacher", str(tmp_path / "none")], "no such run directory"),
                           (["--teacher", str(teacher), "--distill-weight", "1.5"],
                            "--distill-weight must be between 0 and 1")):
        assert main(["train", *common, "--out", str(tmp_path / "bad"), *flags]) == 2
        error = capsys.readouterr().err.strip()
        assert message in error and "\n" not in error
        assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.partial").exists()
