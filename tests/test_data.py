"""Data sources: image folders (two-split and single tree), CIFAR python archive, the Keras
download path (with a stand-in), the decode cache, and bad data."""
import io
import pickle
import shutil
import tarfile

import numpy as np
import pytest
from conftest import write_class_tree
from PIL import Image

from edge_runtime.errors import UserError
from edgekit.cli import build_parser
from edgekit.train import data as data_module
from edgekit.train import image_folder
from edgekit.train.cli import config_from_args
from edgekit.train.data import load_source, make_splits
from edgekit.train.data import run_splits
from edgekit.train.splits import parse_split


def test_two_split_tree(tiny_tree, cache_dir):
    raw = load_source(str(tiny_tree), 32, cache_dir)
    assert raw.class_names == ["class0", "class1", "class2"]
    assert raw.train.x.shape == (36, 32, 32, 3) and raw.train.x.dtype == np.uint8
    assert len(raw.test) == 12
    assert np.bincount(raw.train.y).tolist() == [12, 12, 12]
    # colours are learnable: the red class is reddest
    red = raw.train.x[raw.train.y == 0].mean(axis=(0, 1, 2))
    assert red[0] > red[1] and red[0] > red[2]


def test_standard_split_keeps_official_test_and_carves_validation(tiny_tree, cache_dir):
    raw = load_source(str(tiny_tree), 32, cache_dir)
    splits = make_splits(raw, parse_split("standard"), val_fraction=0.25, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (27, 9, 12)
    assert np.array_equal(splits.test.x, raw.test.x)
    assert np.bincount(splits.val.y).tolist() == [3, 3, 3]


def test_percentage_split_pools_train_and_test(tiny_tree, cache_dir):
    raw = load_source(str(tiny_tree), 32, cache_dir)
    splits = make_splits(raw, parse_split("50/25/25"), val_fraction=0.1, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (24, 12, 12)
    assert np.bincount(splits.test.y).tolist() == [4, 4, 4]
    # no image appears in two parts (images are noisy, so pixel equality means identity)
    flat = lambda part: {bytes(img) for img in part.x}
    assert not flat(splits.train) & flat(splits.test) and not flat(splits.val) & flat(splits.test)


def test_single_tree_gets_all_three_parts(tmp_path, cache_dir):
    write_class_tree(tmp_path / "flat", 20)
    raw = load_source(str(tmp_path / "flat"), 32, cache_dir)
    assert raw.test is None
    splits = make_splits(raw, parse_split("standard"), val_fraction=0.1, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (48, 6, 6)


def test_image_size_resizes(tiny_tree, cache_dir):
    assert load_source(str(tiny_tree), 16, cache_dir).train.x.shape[1:] == (16, 16, 3)


def test_second_load_comes_from_the_cache(tiny_tree, cache_dir, monkeypatch):
    first = load_source(str(tiny_tree), 32, cache_dir)
    assert len(list(cache_dir.glob("images-*.npz"))) == 2

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(image_folder, "decode_files", no_decoding)
    second = load_source(str(tiny_tree), 32, cache_dir)
    assert np.array_equal(first.train.x, second.train.x)


def test_cache_is_invalidated_when_a_file_changes(tiny_tree, cache_dir):
    load_source(str(tiny_tree), 32, cache_dir)
    Image.new("RGB", (32, 32), (0, 0, 0)).save(tiny_tree / "train" / "class0" / "999.png")
    assert len(load_source(str(tiny_tree), 32, cache_dir).train) == 37


def test_cache_is_invalidated_when_heic_photos_become_readable(tiny_tree, cache_dir,
                                                              monkeypatch):
    # A tree decoded without pillow-heif (its HEIC photos skipped) is decoded again once it is
    # installed, rather than served from the cache without them.
    for readable in (False, True):
        monkeypatch.setattr(image_folder, "heif_readable", lambda: readable)
        load_source(str(tiny_tree), 32, cache_dir)
    assert len(list(cache_dir.glob("images-*.npz"))) == 4  # train and test, twice


def test_a_damaged_cache_file_is_decoded_again_and_rewritten(tiny_tree, cache_dir, capsys):
    first = load_source(str(tiny_tree), 32, cache_dir)
    cached = sorted(cache_dir.glob("images-*.npz"))
    for path in cached:  # cut short, as by a full disk or a copy that stopped
        path.write_bytes(path.read_bytes()[:100])
    capsys.readouterr()

    second = load_source(str(tiny_tree), 32, cache_dir)
    assert np.array_equal(first.train.x, second.train.x)
    assert capsys.readouterr().err.count("warning: unreadable decode cache") == 2
    for path in cached:
        with np.load(path) as rewritten:
            assert len(rewritten["x"]) > 0


def test_a_cache_that_cannot_be_written_warns_and_the_data_still_load(tiny_tree, tmp_path,
                                                                      capsys):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    raw = load_source(str(tiny_tree), 32, blocked / "cache")
    assert len(raw.train) == 36 and len(raw.test) == 12
    err = capsys.readouterr().err
    assert err.count("warning: could not write the decode cache") == 2
    assert str(blocked / "cache") in err


def test_unreadable_files_are_skipped_with_a_counted_warning(tiny_tree, cache_dir, capsys):
    (tiny_tree / "train" / "class1" / "notes.txt").write_text("not an image")
    (tiny_tree / "train" / "class2" / "empty.jpg").write_bytes(b"")
    raw = load_source(str(tiny_tree), 32, cache_dir)
    assert len(raw.train) == 36
    assert "skipped 2 unreadable file(s)" in capsys.readouterr().err


def test_hidden_files_and_folders_are_not_images_of_a_class(tiny_tree, cache_dir, capsys):
    folder = tiny_tree / "train" / "class0"
    (folder / ".thumbnails").mkdir()
    Image.new("RGB", (8, 8), (0, 0, 0)).save(folder / ".thumbnails" / "000.png")
    Image.new("RGB", (8, 8), (0, 0, 0)).save(folder / ".hidden.png")
    (tiny_tree / "train" / ".ipynb_checkpoints").mkdir()  # not a class either
    raw = load_source(str(tiny_tree), 32, cache_dir)
    assert len(raw.train) == 36 and raw.class_names == ["class0", "class1", "class2"]
    assert "skipped" not in capsys.readouterr().err


def test_odd_images_are_converted(tiny_tree, cache_dir):
    folder = tiny_tree / "train" / "class0"
    Image.new("L", (50, 31), 90).save(folder / "grey.png")
    Image.new("RGBA", (17, 64), (1, 2, 3, 4)).save(folder / "rgba.png")
    raw = load_source(str(tiny_tree), 32, cache_dir)
    assert len(raw.train) == 38


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "does not exist"),
    (lambda root: root.mkdir(), "has no class folders"),
    (lambda root: [(root / name).mkdir(parents=True) for name in ("cats", "dogs")],
     "has no images"),
    (lambda root: write_class_tree(root / "cats", 2),  # its images in subfolders of cats/
     r"one class folder \(cats\); a classifier needs at least two"),
    (lambda root: write_class_tree(root / "test", 2), "holds test/ but no train/ folder"),
])
def test_bad_folders(tmp_path, cache_dir, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(UserError, match=message):
        load_source(str(root), 32, cache_dir)


@pytest.mark.parametrize("archive", ["photos.zip", "photos.tar.gz"])
def test_an_archive_of_image_folders_is_to_be_unpacked(tiny_tree, cache_dir, tmp_path, archive):
    # A data set downloaded as an archive (Kaggle's are zips): a zip was "not a folder", a
    # tar.gz was taken for CIFAR-10's python release and "missing" its batch files.
    target = tmp_path / archive
    shutil.make_archive(str(target).removesuffix(".zip").removesuffix(".tar.gz"),
                        "zip" if archive.endswith(".zip") else "gztar", tiny_tree)
    with pytest.raises(UserError) as error:
        load_source(str(target), 32, cache_dir)
    assert str(error.value) == (f"{target} is an archive without CIFAR-10's python batches: "
                                "unpack it and give --data the folder")


def test_class_with_only_unreadable_files(tmp_path, cache_dir):
    write_class_tree(tmp_path / "d", 3)
    bad = tmp_path / "d" / "zzz"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"junk")
    with pytest.raises(UserError, match="no readable images.*zzz"):
        load_source(str(tmp_path / "d"), 32, cache_dir)


@pytest.mark.parametrize("train_name, held_out", [
    ("train", None), ("train", "val"), ("train", "validation"), ("Train", "Test"),
    ("Training", "Testing")])
def test_split_folders_are_not_classes(tiny_tree, cache_dir, capsys, train_name, held_out):
    # train/ with val/ (or nothing) beside it: once read as a tree of the classes "train" and
    # "val", a model that learnt which folder an image came from; so were Train/ and Test/.
    shutil.rmtree(tiny_tree / "test")
    (tiny_tree / "train").rename(tiny_tree / train_name)
    if held_out:
        write_class_tree(tiny_tree / held_out, 2, seed=3)
    raw = load_source(str(tiny_tree), 32, cache_dir)
    assert raw.class_names == ["class0", "class1", "class2"] and len(raw.train) == 36
    note = capsys.readouterr().err
    if held_out:
        assert len(raw.test) == 6
    else:
        assert raw.test is None  # carved out of train/ as for a single tree
    if held_out in ("val", "validation"):
        assert f"note: {tiny_tree / held_out} serves as the test set" in note
    else:
        assert "note:" not in note


def test_test_tree_with_other_classes(tiny_tree, cache_dir, monkeypatch):
    (tiny_tree / "test" / "class0").rename(tiny_tree / "test" / "other")
    decoded = []
    monkeypatch.setattr(image_folder, "decode_files",
                        lambda paths, size, counter: decoded.extend(paths))
    with pytest.raises(UserError, match="differ from the training classes"):
        load_source(str(tiny_tree), 32, cache_dir)
    assert decoded == []  # said before any image is decoded (50,000 of them for CIFAR-10)


def _cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": list(rng.integers(0, 10, n))}


def test_cifar_python_archive(tmp_path):
    batches = {f"data_batch_{i}": _cifar_batch(4, i) for i in range(1, 6)}
    batches["test_batch"] = _cifar_batch(3, 9)
    batches["batches.meta"] = {b"label_names": [n.encode() for n in data_module.CIFAR10_CLASSES]}
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, content in batches.items():
            blob = pickle.dumps(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    raw = load_source(str(archive), 32, None)
    assert raw.class_names == data_module.CIFAR10_CLASSES
    assert raw.train.x.shape == (20, 32, 32, 3) and len(raw.test) == 3
    # channel-first rows become channel-last pixels
    row = batches["data_batch_1"][b"data"][0]
    assert raw.train.x[0, 0, 0].tolist() == [row[0], row[1024], row[2048]]
    # the extracted folder layout reads the same
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "extracted")
    again = load_source(str(tmp_path / "extracted"), 32, None)
    assert np.array_equal(again.train.x, raw.train.x)
    # a run of other classes: its classes are compared once the archive is read
    with pytest.raises(UserError, match=r"\(airplane, .*, truck\) differ from the model's "
                                        r"\(cat, dog\)"):
        load_source(str(archive), 32, None, run_classes=["cat", "dog"])


def test_cifar_python_archives_that_cannot_be_read(tmp_path):
    # Each error one line: tarfile's own listed every compression it tried, over five lines.
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(np.random.default_rng(0).integers(0, 256, 1000, np.uint8).tobytes())
    with pytest.raises(UserError) as error:
        load_source(str(archive), 32, None)
    assert str(error.value) == (f"{archive}: not a readable CIFAR-10 python archive (not a tar "
                                "archive, compressed or not)")
    with tarfile.open(archive, "w:gz") as tar:  # a tar archive whose batch is not a pickle
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(UserError) as error:
        load_source(str(archive), 32, None)
    assert "not a readable CIFAR-10 python archive" in str(error.value)
    assert "\n" not in str(error.value)


def test_cifar_python_with_missing_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": []}))
    with pytest.raises(UserError, match="missing: data_batch_1"):
        load_source(str(folder), 32, None)


def test_keras_cifar10_download_path_with_a_stand_in(monkeypatch):
    import keras

    rng = np.random.default_rng(0)
    fake = ((rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8), np.arange(30).reshape(-1, 1) % 10),
            (rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), np.arange(10).reshape(-1, 1)))
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: fake)
    raw = load_source("cifar10", 32, None)
    assert raw.class_names[0] == "airplane" and raw.train.y.shape == (30,)
    assert np.array_equal(raw.test.x, fake[1][0])


def test_keras_cifar10_without_network_is_a_user_error(monkeypatch):
    import keras

    def offline():
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(UserError, match="could not download CIFAR-10"):
        load_source("cifar10", 32, None)


def test_cifar10_for_a_run_of_other_classes_is_refused_before_downloading(monkeypatch):
    # edgekit evaluate RUN --data cifar10 on a cats-and-dogs run: CIFAR-10's classes are known
    # without the 170 MB download (which offline ended in "could not download" instead).
    import keras

    def download():
        raise AssertionError("downloaded before the classes were compared")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", download)
    with pytest.raises(UserError, match=r"classes of cifar10 \(airplane, .*, truck\) differ "
                                        r"from the model's \(cat, dog\)"):
        load_source("cifar10", 32, None, run_classes=["cat", "dog"])


@pytest.mark.parametrize("layout", ["train and test", "one tree"])
def test_data_of_other_classes_than_the_runs_is_refused_before_decoding(tiny_tree, cache_dir,
                                                                        monkeypatch, layout):
    # edgekit evaluate/convert/bench --data with a folder of other classes: said once the
    # folders are listed, not after decoding every image (55,000 for CIFAR-10).
    data = tiny_tree if layout == "train and test" else tiny_tree / "train"
    for tree in ([tiny_tree / "train", tiny_tree / "test"] if data == tiny_tree else [data]):
        (tree / "class0").rename(tree / "zebra")

    def no_decoding(paths, size, counter):
        raise AssertionError(f"{len(paths)} images decoded before the classes were compared")

    monkeypatch.setattr(image_folder, "decode_files", no_decoding)
    settings = config_from_args(build_parser().parse_args(
        ["train", "--data", str(data), "--out", str(cache_dir / "run")])).to_dict()
    with pytest.raises(UserError, match=r"\(class1, class2, zebra\) differ from the model's "
                                        r"\(class0, class1, class2\)"):
        run_splits(settings, class_names=["class0", "class1", "class2"])


@pytest.mark.parametrize("name, shown", [("ca\nt", "ca\\nt"), ("dog\r", "dog\\r"),
                                         ("b\u2028ird", "b\\u2028ird"), ("x\x1b[2J", "x\\x1b[2J")])
def test_a_class_name_labels_txt_cannot_keep_is_refused_before_training(tmp_path, cache_dir,
                                                                       capsys, name, shown):
    # A class folder named with a line break trained, and its labels.txt read back as one
    # class more: convert, evaluate and bench refused the run, and the training was lost.
    from edgekit.cli import main

    data = write_class_tree(tmp_path / "data", 3)
    (data / "class0").rename(data / name)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--epochs", "1"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"class folder {data}/{shown}: its name holds a control " \
                                      "character" in error
    assert not run.exists() and not (tmp_path / "run.partial").exists()


def test_class_names_that_round_trip_are_kept(tmp_path):
    for name in ("chat noir", "猫", "a\u202fb", "x-y_z.1"):
        image_folder.check_class_name(tmp_path / name)  # no error
