"""Data sources and splits for training: CIFAR-10 (Keras download), image folders, and the
official ``cifar-10-python.tar.gz`` / ``cifar-10-batches-py`` layout.

Every source becomes uint8 arrays of shape (N, size, size, 3) and int64 labels; pixels are
scaled later by ``edge_runtime.preprocess.scale_pixels`` as they enter the model.
"""
from __future__ import annotations

import hashlib
import pickle
import sys
import tarfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from edge_runtime.errors import UserError, first_line
from edge_runtime.image_paths import (
    HELD_OUT_FOLDERS,
    TEST_FOLDERS,
    TRAIN_FOLDERS,
    is_hidden,
)
from edge_runtime.preprocess import to_rgb_square

from .config import TrainConfig
from .image_folder import list_class_dirs, read_image_tree
from .labels import check_same_classes
from .splits import SplitSpec, check_val_fraction, parse_split, stratified_split

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]
CIFAR_BATCH_DIR = "cifar-10-batches-py"


@dataclass
class Labeled:
    """Images as uint8 (N, H, W, 3) and their integer labels (N,)."""

    x: np.ndarray
    y: np.ndarray

    def take(self, index: np.ndarray) -> "Labeled":
        return Labeled(self.x[index], self.y[index])

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class RawData:
    """What a source provides before splitting; ``test`` is None when it has no test set."""

    class_names: list[str]
    train: Labeled
    test: Optional[Labeled]


@dataclass
class DataSplits:
    """Train/validation/test sets ready for training, with a fingerprint of their contents."""

    class_names: list[str]
    train: Labeled
    val: Labeled
    test: Labeled
    fingerprint: str


def load_keras_cifar10() -> RawData:
    """CIFAR-10 through ``keras.datasets.cifar10`` (downloaded once, then cached by Keras)."""
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as exc:  # network errors surface as many exception types
        raise UserError(
            f"could not download CIFAR-10 ({type(exc).__name__}: {exc}); "
            "pass --data PATH to a local copy (image folders or cifar-10-python.tar.gz)"
        ) from None
    return RawData(
        list(CIFAR10_CLASSES),
        Labeled(np.asarray(x_train, np.uint8), np.asarray(y_train).reshape(-1).astype(np.int64)),
        Labeled(np.asarray(x_test, np.uint8), np.asarray(y_test).reshape(-1).astype(np.int64)),
    )


def _cifar_batches(path: Path) -> dict[str, dict]:
    """Unpickled CIFAR python batches keyed by file name, from a .tar.gz or a folder."""
    wanted = {f"data_batch_{i}" for i in range(1, 6)} | {"test_batch", "batches.meta"}
    batches: dict[str, dict] = {}
    # tarfile's own message for a file that is not a tar archive lists every compression it
    # tried, over five lines; an error here is one line.
    if path.is_file() and not tarfile.is_tarfile(path):
        raise UserError(f"{path}: not a readable CIFAR-10 python archive (not a tar archive, "
                        "compressed or not)")
    try:
        if path.is_file():
            with tarfile.open(path, "r:*") as archive:
                for member in archive.getmembers():
                    name = Path(member.name).name
                    if name in wanted and member.isfile():
                        batches[name] = pickle.load(archive.extractfile(member), encoding="bytes")
        else:
            for name in wanted:
                if (path / name).is_file():
                    with open(path / name, "rb") as handle:
                        batches[name] = pickle.load(handle, encoding="bytes")
    except (tarfile.TarError, pickle.UnpicklingError, EOFError, OSError) as exc:
        raise UserError(f"{path}: not a readable CIFAR-10 python archive ({first_line(exc)})") \
            from None
    if path.is_file() and not batches:
        raise unpack_first(path)
    missing = sorted(wanted - set(batches))
    if missing:
        raise UserError(f"{path}: CIFAR-10 python files missing: {', '.join(missing)}")
    return batches


def unpack_first(path: Path) -> UserError:
    """The error for an archive given as --data that is not CIFAR-10's python release (a
    downloaded data set of image folders): image folders are read unpacked."""
    return UserError(f"{path} is an archive without CIFAR-10's python batches: unpack it and "
                     "give --data the folder")


def load_cifar_python(path: Path) -> RawData:
    """The official python-pickle release (``cifar-10-python.tar.gz`` or its folder)."""
    batches = _cifar_batches(path)

    def to_labeled(names: list[str]) -> Labeled:
        data = np.concatenate([batches[n][b"data"] for n in names])
        labels = np.concatenate([batches[n][b"labels"] for n in names])
        # Rows are channel-first 3x32x32; the rest of the project is channel-last.
        x = np.asarray(data, np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return Labeled(np.ascontiguousarray(x), np.asarray(labels, np.int64))

    names = [n.decode() for n in batches["batches.meta"][b"label_names"]]
    return RawData(
        names, to_labeled([f"data_batch_{i}" for i in range(1, 6)]), to_labeled(["test_batch"])
    )


def is_cifar_python(path: Path) -> bool:
    """Whether ``path`` looks like the official python release (archive or folder)."""
    if path.is_file():
        return path.name.endswith((".tar.gz", ".tgz", ".tar"))
    return (path / "batches.meta").is_file() or (path / CIFAR_BATCH_DIR).is_dir()


def load_image_folders(path: Path, size: int, cache_dir: Optional[Path],
                       run_classes: Optional[list[str]] = None) -> RawData:
    """``PATH/train/<class>`` + ``PATH/test/<class>`` (or val/, valid/, validation/ in test's
    place), ``PATH/train/<class>`` alone, or a single ``PATH/<class>`` tree. ``run_classes``:
    a run's classes, which the class folders must be (compared before any image is decoded)."""
    folders = {folder.name.lower(): folder for folder in list_class_dirs(path)}
    split_layout = any(name in folders for name in TEST_FOLDERS) or \
        set(folders) <= {*TRAIN_FOLDERS, *HELD_OUT_FOLDERS}
    train_dir, held_out = path, None
    if split_layout:
        train_dir = next((folders[name] for name in TRAIN_FOLDERS if name in folders), None)
        if train_dir is None:
            # Classes named test and val would be trained on as if they were the classes.
            held = ", ".join(sorted(f"{folder.name}/" for folder in folders.values()))
            raise UserError(f"{path} holds {held} but no train/ folder")
        # Without one, train/'s test set is carved out as for a single tree.
        held_out = next((folders[name] for name in HELD_OUT_FOLDERS if name in folders), None)
    # The class folders are compared before any tree is decoded: a test tree that differed
    # once cost the decoding of every training image first.
    names = [folder.name for folder in list_class_dirs(train_dir)]
    if run_classes is not None:
        check_same_classes(str(path), names, run_classes)
    if held_out is None:
        x, y, names = read_image_tree(train_dir, size, cache_dir)
        return RawData(names, Labeled(x, y), None)
    if held_out.name.lower() not in TEST_FOLDERS:
        print(f"note: {held_out} serves as the test set (there is no test/ folder beside "
              f"{train_dir.name}/)", file=sys.stderr)
    x_test, y_test, _ = read_image_tree(held_out, size, cache_dir, class_names=names)
    x, y, _ = read_image_tree(train_dir, size, cache_dir, class_names=names)
    return RawData(names, Labeled(x, y), Labeled(x_test, y_test))


def data_path(data: str) -> Optional[Path]:
    """The path ``--data`` names, or None for ``cifar10`` (the Keras download); UserError when
    the path does not exist."""
    if data == "cifar10":
        return None
    path = Path(data).expanduser()
    if not path.exists():
        raise UserError(f"data path {path} does not exist")
    return path


def check_outside_data(data: str, **folders: Optional[Path]) -> None:
    """UserError when a folder a run writes (``out=...``, ``cache_dir=...``) lies inside the
    image folders of ``--data``: its files would be read back as a class of images (a run
    started in its data folder once failed at conversion, its pictures a class named "runs").
    Hidden folders are fine: the loader never reads them."""
    path = data_path(data)
    if path is None or not path.is_dir():
        return
    root = path.resolve()
    for flag, folder in folders.items():
        if folder is None:
            continue
        inside = Path(folder).expanduser().resolve()
        if inside.is_relative_to(root) and not is_hidden(inside, root):
            raise UserError(f"--{flag.replace('_', '-')} {folder} is inside the data folder "
                            f"{path}, whose images would then include its files; put it "
                            "elsewhere")


def recorded_data(data: str) -> str:
    """``--data`` as a run records it: ``cifar10`` as it is, a path made absolute, so that the
    run's later stages (evaluate, convert, bench) find the data from any folder."""
    return data if data == "cifar10" else str(Path(data).expanduser().resolve())


def load_source(data: str, size: int, cache_dir: Optional[Path],
                run_classes: Optional[list[str]] = None) -> RawData:
    """Load ``--data``: ``cifar10`` (Keras download) or a path of a supported layout.
    ``run_classes``: a run's classes (labels.txt), which the data's must be: UserError
    otherwise, before an image folder is decoded."""
    path = data_path(data)
    if path is None:
        if run_classes is not None:  # known without the download
            check_same_classes(data, CIFAR10_CLASSES, run_classes)
        raw = load_keras_cifar10()
    else:
        if is_cifar_python(path):
            if path.is_dir() and (path / CIFAR_BATCH_DIR).is_dir():
                path = path / CIFAR_BATCH_DIR
            raw = load_cifar_python(path)
            if run_classes is not None:  # the archive names its classes only once read
                check_same_classes(data, raw.class_names, run_classes)
        elif path.is_file() and zipfile.is_zipfile(path):
            raise unpack_first(path)
        else:
            raw = load_image_folders(path, size, cache_dir, run_classes)
    if raw.train.x.shape[1:3] != (size, size):
        raw = RawData(raw.class_names, _resized(raw.train, size), raw.test and _resized(raw.test, size))
    return raw


def _resized(data: Labeled, size: int) -> Labeled:
    """Resize array images through the shared preprocessing path (rarely needed: CIFAR is 32)."""
    x = np.stack([to_rgb_square(Image.fromarray(img), size) for img in data.x])
    return Labeled(x, data.y)


def fingerprint(class_names: list[str], parts: list[Labeled]) -> str:
    """sha256 (first 16 hex digits) of the class names and every split's pixels and labels."""
    digest = hashlib.sha256("|".join(class_names).encode())
    for part in parts:
        digest.update(np.ascontiguousarray(part.x).data)
        digest.update(np.ascontiguousarray(part.y).data)
    return digest.hexdigest()[:16]


def make_splits(raw: RawData, spec: SplitSpec, val_fraction: float, seed: int) -> DataSplits:
    """Apply a split protocol (see ``train.splits``) to a loaded source."""
    if spec.percentages is not None:
        pool = raw.train if raw.test is None else Labeled(
            np.concatenate([raw.train.x, raw.test.x]), np.concatenate([raw.train.y, raw.test.y])
        )
        _, val_pct, test_pct = spec.percentages
        train_i, val_i, test_i = stratified_split(pool.y, [val_pct / 100, test_pct / 100], seed,
                                                   raw.class_names)
        train, val, test = pool.take(train_i), pool.take(val_i), pool.take(test_i)
    elif raw.test is None:
        train_i, val_i, test_i = stratified_split(raw.train.y, [val_fraction, val_fraction], seed,
                                                   raw.class_names)
        train, val, test = raw.train.take(train_i), raw.train.take(val_i), raw.train.take(test_i)
    else:
        train_i, val_i = stratified_split(raw.train.y, [val_fraction], seed, raw.class_names)
        train, val, test = raw.train.take(train_i), raw.train.take(val_i), raw.test
    return DataSplits(raw.class_names, train, val, test, fingerprint(raw.class_names, [train, val, test]))


def load_splits(config: TrainConfig, class_names: Optional[list[str]] = None) -> DataSplits:
    """The run's data, split by its protocol; data whose classes are not ``class_names``
    (when given) is refused before it is decoded and split (which would fail less to the
    point, and only after every image was decoded)."""
    spec = parse_split(config.split)
    check_val_fraction(config.val_fraction)
    cache = Path(config.cache_dir) if config.cache_dir else None
    raw = load_source(config.data, config.image_size, cache, class_names)
    return make_splits(raw, spec, config.val_fraction, config.seed)


def run_splits(settings: dict, data: Optional[str] = None, cache_dir: Optional[Path] = None,
               class_names: Optional[list[str]] = None) -> tuple[TrainConfig, DataSplits]:
    """A run's stored settings (config.json's ``settings``) and its data split again, read
    from ``data`` instead when the data has moved since training, and cached in
    ``cache_dir`` instead of the run's own cache folder when given. Pass the run's
    ``class_names`` (labels.txt) to refuse data with other classes."""
    config = TrainConfig.from_dict(settings)
    if data:
        config = replace(config, data=data)
    elif config.data != "cifar10" and not Path(config.data).expanduser().exists():
        raise UserError(f"data path {config.data}, where this run was trained, does not exist: "
                        "give --data with where the data is now")
    if cache_dir:
        config = replace(config, cache_dir=str(cache_dir))
    return config, load_splits(config, class_names)
