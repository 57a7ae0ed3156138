"""End-to-end training runs on tiny data: every run-directory file, resume, evaluate, and the
errors a user sees for bad input (one line, exit 2, nothing written)."""
import csv
import json
import shlex
import shutil

import numpy as np
import pytest

from edgekit.cli import build_parser, main
from edgekit.train import checkpoint
from edgekit.train.cli import config_from_args
from edgekit.train.config import TrainConfig
from edgekit.train.data import check_outside_data
from edgekit.train.run import train_run

from conftest import ignored_ctrl_c, interrupted_at_epoch

RUN_FILES = {"model.keras", "config.json", "labels.txt", "history.csv", "metrics.json",
             "training_curves.png", "confusion_matrix.png", "classification_report.txt",
             "sample_predictions.png"}

pytestmark = pytest.mark.slow


def train(tiny_tree, out, *extra):
    return main(["train", "--data", str(tiny_tree), "--out", str(out), "--epochs", "3",
                 "--batch-size", "8", *extra])


def history_rows(run_dir):
    with open(run_dir / "history.csv") as handle:
        return list(csv.DictReader(handle))


def test_training_writes_the_whole_run_directory(tiny_tree, cache_dir, tmp_path, capsys,
                                                 monkeypatch):
    out = tmp_path / "my run"
    argv = ["edgekit", "train", "--data", str(tiny_tree), "--out", str(out), "--epochs", "3",
            "--batch-size", "8"]
    # the console script's argv[0]: one installation's path, recorded as the command's name
    monkeypatch.setattr("sys.argv", ["/opt/venv/bin/edgekit", *argv[1:]])
    assert train(tiny_tree, out) == 0
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    assert not (out / "checkpoint.npz").exists()
    assert not (tmp_path / "my run.partial").exists()
    assert (out / "labels.txt").read_text() == "class0\nclass1\nclass2\n"
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["recipe"]["name"] == "fast"
    assert config["settings"]["recipe"]["epochs"] == 3
    assert len(config["data_fingerprint"]) == 16 and config["versions"]["keras"]
    assert config["parameters"] == 357_706 - 129 * 7  # 3 classes instead of 10
    assert config["distribution"] == "single-device"  # CI: one CPU, no strategy
    assert shlex.split(config["command"]) == argv  # pasted into a shell, it runs again
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["num_test_images"] == 12
    assert set(metrics["per_class"]) == {"class0", "class1", "class2"}
    assert metrics["epochs_trained"] == 3 and metrics["seconds_per_epoch"] > 0
    rows = history_rows(out)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    # Where each epoch's time went: waiting for batches, validation, and the steps the rest.
    for row in rows:
        waited, validated = float(row["input_seconds"]), float(row["validation_seconds"])
        assert 0 <= waited and 0 < validated and waited + validated < float(row["seconds"])
    split = metrics["epoch_seconds_split"]
    assert config_of(out)["epoch_seconds_split"] == split
    mean = {key: sum(float(row[column]) for row in rows) / 3 for key, column in (
        ("input", "input_seconds"), ("validation", "validation_seconds"), ("all", "seconds"))}
    assert split["input"] == pytest.approx(mean["input"], abs=1e-3)
    assert split["validation"] == pytest.approx(mean["validation"], abs=1e-3)
    assert split["step"] == pytest.approx(mean["all"] - mean["input"] - mean["validation"],
                                          abs=2e-3)
    report = (out / "classification_report.txt").read_text()
    assert "precision" in report and "class2" in report
    for picture in ("training_curves.png", "confusion_matrix.png", "sample_predictions.png"):
        assert (out / picture).read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "epoch 3/3" in printed
    assert f"s/epoch (waiting for batches {split['input']:.1f} s, training steps " in printed


def config_of(run_dir):
    return json.loads((run_dir / "config.json").read_text())


def test_a_training_too_short_for_its_batch_norm_averages_ends_with_their_exact_values(
        tiny_tree, cache_dir, tmp_path, capsys):
    # A 450-image folder's default run (240 steps) kept 9% of the starting variance of 1 and
    # scored 38.9% on 90 test images, 70.0% with the statistics recomputed.
    import keras

    from edge_runtime.preprocess import scale_pixels
    from edgekit.train.data import run_splits

    out = tmp_path / "run"
    assert train(tiny_tree, out) == 0
    _, splits = run_splits(json.loads((out / "config.json").read_text())["settings"])
    assert (f"BatchNorm statistics of 3 layers recomputed over the {len(splits.train)} "
            "training images: 12 training steps are too few for their moving averages"
            ) in capsys.readouterr().out  # 3 epochs of 4 batches of 8
    model = keras.saving.load_model(out / "model.keras")
    first = model.get_layer("bn1")
    inputs = keras.Model(model.input, first.input).predict(scale_pixels(splits.train.x),
                                                            verbose=0)
    channels = inputs.reshape(-1, inputs.shape[-1]).astype(np.float64)
    np.testing.assert_allclose(first.moving_mean.numpy(), channels.mean(0), rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(first.moving_variance.numpy(), channels.var(0), rtol=1e-3)


def test_metrics_say_how_the_model_fits_its_own_training_images(tiny_tree, cache_dir, tmp_path,
                                                                capsys):
    import keras

    from edgekit.train.data import run_splits
    from edgekit.train.evaluate import fit_accuracy

    out = tmp_path / "run"
    assert train(tiny_tree, out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    _, splits = run_splits(json.loads((out / "config.json").read_text())["settings"])
    model = keras.saving.load_model(out / "model.keras")
    assert metrics["train_accuracy"] == fit_accuracy(model, splits.train)
    assert metrics["val_accuracy"] == fit_accuracy(model, splits.val)
    fits = (f"(training split {metrics['train_accuracy']:.4f}, "
            f"validation {metrics['val_accuracy']:.4f})")
    assert fits in capsys.readouterr().out
    assert f"on the training split {metrics['train_accuracy']:.4f}" in \
        (out / "classification_report.txt").read_text()
    assert main(["evaluate", str(out)]) == 0
    assert fits in capsys.readouterr().out


def test_seed_recipe_on_the_reference_split(tiny_tree, cache_dir, tmp_path):
    out = tmp_path / "seed"
    assert main(["train", "--data", str(tiny_tree), "--out", str(out), "--recipe", "seed",
                 "--epochs", "1", "--split", "70/15/15", "--arch", "resnet8",
                 "--tensorboard"]) == 0
    assert any((out / "tensorboard").rglob("events.out.tfevents.*"))
    config = json.loads((out / "config.json").read_text())
    assert config["split_sizes"] == {"train": 36, "val": 6, "test": 6}
    assert config["settings"]["recipe"]["batch_size"] == 64
    assert config["parameters"] == 78_666 - 65 * 7


@pytest.mark.parametrize("recipe_flags", [[], ["--sam", "0.05"]], ids=["plain", "sam"])
def test_interrupted_run_resumes_from_its_last_epoch(tiny_tree, cache_dir, tmp_path, capsys,
                                                     recipe_flags):
    reference = tmp_path / "reference"
    assert train(tiny_tree, reference, *recipe_flags) == 0

    out = tmp_path / "run"
    with interrupted_at_epoch(1):
        assert train(tiny_tree, out, *recipe_flags) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "edgekit: interrupted; the run continues with --resume")
    partial = tmp_path / "run.partial"
    assert not out.exists() and (partial / "checkpoint.npz").is_file()
    assert len(history_rows(partial)) == 1

    assert train(tiny_tree, out) == 2  # must ask for --resume or --overwrite
    assert main(["train", "--out", str(out), "--resume"]) == 0
    rows = history_rows(out)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    recipe = json.loads((out / "config.json").read_text())["settings"]["recipe"]
    assert recipe["sam_rho"] == (0.05 if recipe_flags else 0.0)
    # same seeds, same batches: the resumed run follows the uninterrupted one
    expected = history_rows(reference)
    np.testing.assert_allclose([float(r["loss"]) for r in rows],
                               [float(r["loss"]) for r in expected], rtol=1e-3)


def test_an_interruption_between_an_epochs_two_files_resumes_as_if_uninterrupted(
        tiny_tree, cache_dir, tmp_path):
    # An epoch ends by writing history.csv and checkpoint.npz; Ctrl-C between the two left
    # them an epoch apart, and the resumed run trained one epoch twice or missed a row.
    reference = tmp_path / "reference"
    assert train(tiny_tree, reference) == 0
    writes = []

    def counted(write):
        def wrapper(*args):
            writes.append(write.__name__)
            if len(writes) == 4:  # the second file of epoch 2
                raise KeyboardInterrupt
            write(*args)
        return wrapper

    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:
        for name in ("save_state", "write_history"):
            patch.setattr(checkpoint, name, counted(getattr(checkpoint, name)))
        assert train(tiny_tree, out) == 130
    assert main(["train", "--out", str(out), "--resume"]) == 0
    rows, expected = history_rows(out), history_rows(reference)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    np.testing.assert_allclose([float(r["loss"]) for r in rows],
                               [float(r["loss"]) for r in expected], rtol=1e-3)


def test_ctrl_c_while_an_epoch_is_written_waits_for_both_files(tiny_tree, cache_dir, tmp_path,
                                                              python_ctrl_c):
    # Ctrl-C that lands between history.csv and the checkpoint is held back until both are
    # written, so they agree and no library is interrupted half-way through a write.
    import os
    import signal

    original = checkpoint.write_history

    def ctrl_c_after_the_second_epochs_history(path, history):
        original(path, history)
        if len(history) == 2:
            os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoint, "write_history", ctrl_c_after_the_second_epochs_history)
        assert train(tiny_tree, out) == 130
    partial = tmp_path / "run.partial"
    assert len(history_rows(partial)) == 2
    with np.load(partial / "checkpoint.npz") as saved:
        assert int(saved["epochs_done"]) == 2


@pytest.mark.parametrize("damaged", ["checkpoint.npz", "history.csv"])
def test_a_damaged_interrupted_run_is_one_line(tiny_tree, cache_dir, tmp_path, capsys,
                                              damaged):
    out = tmp_path / "run"
    with interrupted_at_epoch(2):
        assert train(tiny_tree, out) == 130
    path = tmp_path / "run.partial" / damaged
    path.write_bytes(b"epoch,loss\nx,y\n" if damaged == "history.csv" else path.read_bytes()[:99])
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"edgekit: error: {path}: damaged (") and "\n" not in err
    assert err.endswith("start again with --overwrite")


def test_resume_without_an_interrupted_run(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "nothing"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_evaluate_recomputes_metrics_and_pictures(tiny_tree, cache_dir, tmp_path, capsys,
                                                  monkeypatch):
    out = tmp_path / "run"
    # Trained with a relative --data, evaluated from another folder: the run still finds it.
    monkeypatch.chdir(tmp_path)
    assert train(tiny_tree.relative_to(tmp_path), out) == 0
    before = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").write_text(json.dumps(dict(before, test_accuracy=-1.0)))
    (out / "confusion_matrix.png").unlink()
    monkeypatch.chdir(out)
    assert main(["evaluate", "."]) == 0
    after = json.loads((out / "metrics.json").read_text())
    assert after["test_accuracy"] == pytest.approx(before["test_accuracy"])
    assert after["epochs_trained"] == 3
    assert (out / "confusion_matrix.png").is_file()
    # A class folder added to the data since training is named with the data's path.
    for part in ("train", "test"):
        (tiny_tree / part / "class3").mkdir()
        shutil.copy(next((tiny_tree / part / "class0").iterdir()), tiny_tree / part / "class3")
    assert main(["evaluate", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"edgekit: error: classes of {tiny_tree.resolve()} (class0, class1, class2, class3) "
        "differ from the model's (class0, class1, class2)")
    # Data moved since training: the error says whose path it is and what to do.
    moved = tmp_path / "moved"
    tiny_tree.rename(moved)
    assert main(["evaluate", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"edgekit: error: data path {tiny_tree.resolve()}, where this run was trained, does "
        "not exist: give --data with where the data is now")
    shutil.rmtree(moved / "train" / "class3")
    shutil.rmtree(moved / "test" / "class3")
    (out / "metrics.json").write_text("{not json")  # a traceback before: now written anew
    assert main(["evaluate", str(out), "--data", str(moved)]) == 0
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] == \
        pytest.approx(before["test_accuracy"])


@pytest.mark.parametrize("args, message", [
    (["--data", "{tmp}/missing"], "does not exist"),
    (["--data", "{tmp}/empty"], "has no class folders"),
    (["--data", "{tree}", "--split", "60/30"], "bad --split"),
    (["--data", "{tree}", "--arch", "vgg"], "unknown --arch"),
    (["--data", "{tree}", "--epochs", "0"], "--epochs must be at least 1"),
    (["--data", "{tree}", "--lr", "-1"], "--lr must be positive"),
    (["--data", "{tree}", "--lr", "nan"], "--lr must be positive"),
    (["--data", "{tree}", "--width", "0"], "--width must be positive"),
    (["--data", "{tree}", "--weight-decay", "-0.1"], "--weight-decay must be 0 or more"),
    (["--data", "{tree}", "--mixup", "nan"], "--mixup must be 0 or more"),
    (["--data", "{tree}", "--sam", "-0.05"], "--sam must be 0 or more"),
    (["--data", "{tree}", "--label-smoothing", "1"], "--label-smoothing must be at least 0"),
    (["--data", "{tree}", "--warmup-epochs", "-1"], "--warmup-epochs must be 0 or more"),
])
def test_bad_input_gives_one_line_and_writes_nothing(tiny_tree, cache_dir, tmp_path, capsys,
                                                     args, message):
    (tmp_path / "empty").mkdir()
    args = [a.format(tmp=tmp_path, tree=tiny_tree) for a in args]
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edgekit: error:") and message in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not out.exists() and not (tmp_path / "run.partial").exists()
    # Refused before any image was decoded: nothing reached the decoded-image cache.
    assert not cache_dir.exists() or not any(cache_dir.iterdir())


def test_existing_run_is_not_overwritten_silently(tiny_tree, cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    assert train(tiny_tree, out) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_train_run_records_a_relative_data_path_as_absolute(tiny_tree, cache_dir, tmp_path,
                                                            monkeypatch):
    # The notebook builds its TrainConfig itself, with a relative data path, which its run's
    # config.json then held: convert and bench started from another folder could not find it.
    monkeypatch.chdir(tmp_path)
    config = config_from_args(build_parser().parse_args(
        ["train", "--data", "data", "--out", "run", "--epochs", "1", "--batch-size", "8"]))
    assert config.data == "data"
    train_run(config)
    settings = json.loads((tmp_path / "run" / "config.json").read_text())["settings"]
    assert settings["data"] == str(tiny_tree.resolve())


def test_a_folder_inside_the_data_folder_is_refused(tiny_tree, cache_dir, tmp_path, capsys):
    # A run written inside its data folder had its pictures read back as a class of images
    # ("runs"), and its conversion failed; a cache there would be a class of .npz files.
    out = tiny_tree / "runs" / "x"
    for flags, named in (([], f"--out {out}"), (["--out", str(tmp_path / "run"), "--cache-dir",
                                                  str(tiny_tree / "cache")],
                                                 f"--cache-dir {tiny_tree / 'cache'}")):
        assert train(tiny_tree, out, *flags) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"edgekit: error: {named} is inside the data folder {tiny_tree}, whose images would "
            "then include its files; put it elsewhere")
    assert not (tiny_tree / "runs").exists() and not (tmp_path / "run").exists()
    check_outside_data(str(tiny_tree), out=tiny_tree / ".runs" / "x")  # hidden: never read
    check_outside_data(str(tiny_tree), out=tmp_path / "data2")  # beside it, named alike


def test_an_out_that_cannot_be_made_is_one_line(tiny_tree, cache_dir, tmp_path, capsys):
    # An --out inside a file (or a read-only place, or a full disk): the operating system's
    # reason and the path, not a traceback.
    notes = tmp_path / "notes.txt"
    notes.write_text("a file")
    assert train(tiny_tree, notes / "run") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"edgekit: error: cannot make {notes}/run: {notes} is not a folder this "
                   "user can write to"]
    assert notes.read_text() == "a file"


def test_overwrite_replaces_only_a_run_directory(tiny_tree, cache_dir, tmp_path, capsys):
    # `--out ~/Documents --overwrite` (a typo, or `edgekit pipeline --redo train` pointed at
    # the wrong folder) must not delete the folder's files after the training.
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "thesis.txt").write_text("five years")
    notes = tmp_path / "notes.txt"
    notes.write_text("a file, not a folder")
    for out in (documents, notes):
        # Without --overwrite too: "pass --overwrite to replace it" would only lead to this.
        for flags in ([], ["--overwrite"]):
            assert train(tiny_tree, out, *flags) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert err[-1] == (f"edgekit: error: {out} exists and is not a run directory (no "
                               "config.json): choose another --out, or remove it yourself")
    assert (documents / "thesis.txt").read_text() == "five years"
    assert notes.read_text() == "a file, not a folder"
    assert not list(tmp_path.glob("*.partial"))
    # An empty folder and an earlier run are replaced.
    run = tmp_path / "run"
    run.mkdir()
    for _ in range(2):
        assert train(tiny_tree, run, "--overwrite", "--epochs", "1") == 0
        assert len(history_rows(run)) == 1


def test_flags_not_typed_leave_the_base_settings():
    # --resume compares only the flags typed: the others are None ("not given") and take the
    # stored run's values; a new run takes edgekit train's defaults.
    args = build_parser().parse_args(["train", "--out", "x", "--resume", "--epo", "5",
                                      "--lr=0.1"])
    assert args.epochs == 5 and args.arch is None and args.seed is None
    stored = TrainConfig(arch="ds_cnn", seed=7)
    config = config_from_args(args, stored)
    assert (config.arch, config.seed, config.recipe.epochs, config.recipe.learning_rate) == \
        ("ds_cnn", 7, 5, 0.1)
    assert (config_from_args(args).arch, config_from_args(args).seed) == ("seed_cnn", 0)


def test_killed_process_resumes(tiny_tree, cache_dir, tmp_path, capsys):
    """A real `kill -9` mid-run: the partial run keeps its last whole epoch and resumes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    partial = tmp_path / "run.partial"
    command = [sys.executable, "-m", "edgekit.cli", "train", "--data", str(tiny_tree),
               "--out", str(out), "--epochs", "40", "--batch-size", "8"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    deadline = time.time() + 300
    while time.time() < deadline and len(history_rows(partial) if (partial / "history.csv").is_file() else []) < 2:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(history_rows(partial))
    assert 2 <= done < 40 and not out.exists()
    # A flag typed with another value than the run was started with is refused (it used to
    # be ignored without a word); the same value is not.
    assert main(["train", "--out", str(out), "--resume", "--epochs", "1"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"edgekit: error: {partial} was started with other settings than asked (epochs 40, "
        "asked 1): --resume continues it as it was started, so leave those flags out, or pass "
        "--overwrite instead of --resume to start again with them")
    assert main(["train", "--out", str(out), "--resume", "--epochs", "40"]) == 0
    rows = history_rows(out)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 41))


def test_sigterm_stops_a_training_started_with_ctrl_c_ignored(tiny_tree, cache_dir, tmp_path):
    """A background job or nohup ignores SIGINT: SIGTERM still stops the training cleanly,
    its last whole epoch kept for --resume."""
    import signal
    import subprocess
    import sys
    import time

    out, partial = tmp_path / "run", tmp_path / "run.partial"
    command = [sys.executable, "-m", "edgekit.cli", "train", "--data", str(tiny_tree),
               "--out", str(out), "--epochs", "40", "--batch-size", "8"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, preexec_fn=ignored_ctrl_c)
    deadline = time.time() + 300
    while time.time() < deadline and not ((partial / "history.csv").is_file()
                                           and len(history_rows(partial)) >= 2):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)  # ignored, as in a background job
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines()[-1] == \
        "edgekit: terminated; the run continues with --resume"
    with np.load(partial / "checkpoint.npz") as saved:
        done = int(saved["epochs_done"])
    assert 2 <= done < 40 and len(history_rows(partial)) == done and not out.exists()
    assert main(["train", "--out", str(out), "--resume"]) == 0
    assert [int(r["epoch"]) for r in history_rows(out)] == list(range(1, 41))


def test_a_full_disk_at_the_start_leaves_no_empty_folders(tiny_tree, cache_dir, tmp_path,
                                                          capsys, monkeypatch):
    import errno

    from edgekit.train import run as run_module

    def full_disk(partial, *arguments):
        raise OSError(errno.ENOSPC, "No space left on device", str(partial / "config.json"))

    monkeypatch.setattr(run_module, "_write_run_header", full_disk)
    out = tmp_path / "new" / "deeper" / "run"
    assert main(["train", "--data", str(tiny_tree), "--out", str(out), "--epochs", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        f"edgekit: error: {out}.partial/config.json: No space left on device"
    assert not (tmp_path / "new").exists()


def test_throughput_benchmark_writes_every_pipeline(tiny_tree, cache_dir, tmp_path):
    from tools import train_throughput

    out = tmp_path / "throughput.json"
    assert train_throughput.main(["--data", str(tiny_tree), "--repeats", "1", "--batch-size", "8",
                                  "--out", str(out), "--cache-dir", str(cache_dir)]) == 0
    result = json.loads(out.read_text())
    assert result["images_per_epoch"] == 33  # 36 training images less 1 per class for validation
    assert all(v > 0 for v in result["images_per_second"].values())
    assert set(result["seconds"]) == {"plain_fit", "edgekit_generator", "edgekit_prefetched",
                                      "edgekit_train"}
    assert result["prefetched_over_generator_time"] > 0 and result["generator_over_plain_time"] > 0
    assert result["edgekit_train_over_plain_time"] > 0


def test_step_speed_benchmark_times_each_backend_in_its_own_process(tmp_path, capsys):
    from tools import train_step_speed

    out = tmp_path / "speed.json"
    assert train_step_speed.main(["--arch", "seed_cnn", "--width", "0.25", "--teacher-arch",
                                  "resnet8", "--teacher-width", "0.25", "--batch-size", "4",
                                  "--repeats", "1", "--backends", "tensorflow,no_such_backend",
                                  "--policies", "float32", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    measured, failed = rows
    assert measured["backend"] == "tensorflow" and measured["train_step_s"] > 0
    assert measured["teacher_forward_s"] > 0
    assert measured["train_step_ratio"] == measured["teacher_forward_ratio"] == 1.0
    assert failed["backend"] == "no_such_backend" and failed["error"].startswith("exit ")
    assert "train_step_s" not in failed
    table = capsys.readouterr().out
    assert "| tensorflow | float32 |" in table and "| no_such_backend | float32 |" in table


def test_step_speed_ratios_are_against_the_first_measured_row():
    from tools.train_step_speed import add_ratios

    rows = [{"error": "exit 1"}, {"train_step_s": 0.2}, {"train_step_s": 0.5,
                                                          "teacher_forward_s": 0.1}]
    add_ratios(rows)
    assert "train_step_ratio" not in rows[0]
    assert rows[1]["train_step_ratio"] == 1.0 and rows[2]["train_step_ratio"] == 2.5
    assert "teacher_forward_ratio" not in rows[2]  # the base row has no teacher time


def test_step_speed_refuses_bad_settings_before_starting_a_process(capsys):
    from tools.tool_main import run_tool
    from tools.train_step_speed import main as step_speed

    assert run_tool(step_speed, ["--repeats", "0"]) == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        step_speed(["--arch", "vgg"])
    assert stopped.value.code == 2 and "invalid choice: 'vgg'" in capsys.readouterr().err


def test_a_run_another_process_is_training_is_left_alone(tiny_tree, cache_dir, tmp_path,
                                                         capsys):
    # A second terminal (or a forgotten background job) on the same --out: "an interrupted run
    # exists: pass --resume" led to two processes training into one folder.
    from edgekit.common.folder_lock import FolderLock

    out = tmp_path / "run"
    with interrupted_at_epoch(1):
        assert train(tiny_tree, out) == 130
    partial = tmp_path / "run.partial"
    busy = (f"edgekit: error: {partial} is in use by another edgekit command right now: wait "
            "for it to end, or stop it first")
    with FolderLock() as other:
        other.take(partial)
        for flags in (["--resume"], [], ["--overwrite"]):
            assert main(["train", "--data", str(tiny_tree), "--out", str(out), *flags]) == 2
            assert capsys.readouterr().err.strip().splitlines()[-1] == busy
    assert len(history_rows(partial)) == 1 and (partial / "checkpoint.npz").is_file()
    assert main(["train", "--out", str(out), "--resume"]) == 0
    assert [r["epoch"] for r in history_rows(out)] == ["1", "2", "3"]


def test_a_run_in_use_is_neither_evaluated_nor_replaced_under_the_command_using_it(
        tiny_tree, cache_dir, tmp_path, capsys):
    # Unlocked, evaluate would rewrite a run a conversion is reading, and a training with
    # --overwrite would delete the old run under a benchmark of it at its end.
    import subprocess
    import sys

    from edgekit.common.folder_lock import FolderLock

    out = tmp_path / "run"
    assert train(tiny_tree, out) == 0
    busy = (f"edgekit: error: {out} is in use by another edgekit command right now: wait for "
            "it to end, or stop it first")
    with FolderLock() as benchmark:
        benchmark.take(out)
        for command in (["evaluate", str(out)],
                        ["train", "--data", str(tiny_tree), "--out", str(out), "--overwrite"]):
            assert main(command) == 2
            assert capsys.readouterr().err.strip().splitlines()[-1] == busy
    assert not (tmp_path / "run.partial").exists()
    with interrupted_at_epoch(1):  # a new run of it, begun while nothing else used it
        assert train(tiny_tree, out, "--overwrite", "--seed", "7") == 130

    def seed(run_dir):
        return json.loads((run_dir / "config.json").read_text())["settings"]["seed"]

    with FolderLock() as benchmark:  # a benchmark of the old run begun since then
        benchmark.take(out)
        process = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "train", "--out",
                                    str(out), "--resume"], stderr=subprocess.PIPE, text=True)
        waiting = next((line for line in process.stderr if line.startswith("waiting")), None)
        assert waiting == f"waiting for {out}: another edgekit command is using it\n"
        assert process.poll() is None and seed(out) == 0
    assert process.wait(timeout=120) == 0, process.stderr.read()
    assert seed(out) == 7 and [r["epoch"] for r in history_rows(out)] == ["1", "2", "3"]
    assert not (tmp_path / "run.partial").exists()


def test_a_history_from_before_the_time_split_is_read_written_and_summed(tmp_path):
    from edgekit.train.checkpoint import read_history, write_history
    from edgekit.train.input_timing import epoch_split

    older = tmp_path / "history.csv"
    older.write_text("epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,seconds\n"
                     "1,1.0,0.5,1.1,0.4,0.001,10.0\n")
    rows = read_history(older)
    assert epoch_split(rows) is None  # no epoch recorded its split
    rows.append({"epoch": 2, "loss": 0.9, "accuracy": 0.6, "val_loss": 1.0,
                 "val_accuracy": 0.5, "learning_rate": 0.001, "seconds": 8.0,
                 "input_seconds": 2.0, "validation_seconds": 1.0})
    write_history(older, rows)  # the resumed run's file: the old row's timing columns empty
    assert older.read_text().splitlines()[1].endswith(",10.0,,")
    rows = read_history(older)
    assert "input_seconds" not in rows[0] and rows[1]["input_seconds"] == 2.0
    assert epoch_split(rows) == {"input": 2.0, "step": 5.0, "validation": 1.0}


def test_a_time_budget_lays_the_schedule_over_the_epochs_that_fit(tiny_tree, cache_dir,
                                                                   tmp_path, capsys):
    from edgekit.train.time_budget import epochs_within

    assert [epochs_within(10, 60.0, 60), epochs_within(10, 7.0, 60), epochs_within(1, 90, 60),
            epochs_within(1, 90, 1)] == [10, 60, 2, 1]
    out = tmp_path / "budgeted"
    assert main(["train", "--data", str(tiny_tree), "--out", str(out), "--epochs", "500",
                 "--batch-size", "8", "--time-budget", "0.2"]) == 0
    config = json.loads((out / "config.json").read_text())
    plan = config["time_budget"]
    assert config["settings"]["time_budget"] == 0.2 and plan["minutes"] == 0.2
    rows = history_rows(out)
    seconds = [float(row["seconds"]) for row in rows]
    assert plan["first_epoch_seconds"] == pytest.approx(seconds[0], abs=0.01)
    assert plan["epochs"] == len(rows) == epochs_within(0.2, seconds[0], 500) < 500
    # Within the budget, or over it by one epoch at most; the schedule ran to its end: the
    # cosine's rate after the last step is zero (the first epoch's, in warm-up, is not).
    assert sum(seconds) <= 0.2 * 60 + max(seconds)
    assert float(rows[-1]["learning_rate"]) == pytest.approx(0.0, abs=1e-7)
    assert float(rows[0]["learning_rate"]) > 0
    assert (f"time budget 0.2 min: the first epoch took {seconds[0]:.1f} s, so {len(rows)} "
            "epoch(s) of at most 500") in capsys.readouterr().out

    # Interrupted in its second epoch (there always is one), a budgeted run resumes with the
    # epochs it chose after its first.
    resumed = tmp_path / "resumed"
    with interrupted_at_epoch(1):
        assert main(["train", "--data", str(tiny_tree), "--out", str(resumed), "--epochs",
                     "500", "--batch-size", "8", "--time-budget", "0.2"]) == 130
    chosen = json.loads((tmp_path / "resumed.partial" / "config.json").read_text())
    capsys.readouterr()
    assert main(["train", "--out", str(resumed), "--resume"]) == 0
    assert "time budget" not in capsys.readouterr().out  # not measured again
    assert json.loads((resumed / "config.json").read_text())["time_budget"] == \
        chosen["time_budget"]
    assert len(history_rows(resumed)) == chosen["time_budget"]["epochs"]
    assert float(history_rows(resumed)[-1]["learning_rate"]) == pytest.approx(0.0, abs=1e-7)
    assert main(["train", "--data", str(tiny_tree), "--out", str(tmp_path / "x"),
                 "--time-budget", "0"]) == 2
    assert "--time-budget must be a positive number of minutes, got 0.0" in \
        capsys.readouterr().err
