"""Finished runs as later commands meet them: checked to be finished (cheap, no Keras), and
a finished run's model as the starting point of another run (``--init-from``) or as its
teacher (``--teacher``), checked to fit the new run before anything is written."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from edge_runtime.errors import UserError, damage_reason, first_line

if TYPE_CHECKING:
    import keras

# What every later command reads from a run directory. Training writes them all into the
# staging folder and renames it only when the run is complete.
RUN_FILES = ("model.keras", "config.json", "labels.txt")


def staging_dir(out: Path) -> Path:
    """Where a run is built before it is renamed to ``out``."""
    return out.with_name(out.name + ".partial")


def add_to_run_config(path: Path, key: str, value) -> None:
    """Record ``value`` under ``key`` in a run's config.json (atomic): what training decides
    or measures once it has begun, beside the settings the file opened with."""
    from edgekit.common.atomic import write_json

    config = json.loads(path.read_text())
    config[key] = value
    write_json(path, config)


def read_run_config(path: Path) -> dict:
    """A run's config.json (finished or interrupted), checked to hold what later commands
    read: its settings, classes and input shape. UserError in one line for a damaged file
    (every command that read one ended in a traceback)."""
    from .config import TrainConfig

    try:
        config = json.loads(path.read_text())
        TrainConfig.from_dict(config["settings"])
        if not (isinstance(config["class_names"], list) and len(config["input"]["shape"]) == 3):
            raise ValueError("bad class_names or input shape")
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: damaged ({damage_reason(exc)}); edgekit train writes it, so "
                        "restore it or train the run again") from None
    return config


def check_finished_run(run_dir, flag: str = "", needs: tuple = RUN_FILES) -> Path:
    """``run_dir`` as a Path when it holds the files of a finished run (``needs``), else a
    UserError saying what is missing; a run still being trained (or stopped) is named as
    such. ``flag`` names the option in the errors."""
    folder = Path(run_dir)
    where = f"{flag} {run_dir}" if flag else str(run_dir)
    if not folder.is_dir():
        if staging_dir(folder).is_dir():
            raise UserError(f"{where}: its training has not finished ({staging_dir(folder)} "
                            f"holds it): edgekit train --resume --out {run_dir}")
        raise UserError(f"{where}: no such run directory")
    missing = [name for name in needs if not (folder / name).is_file()]
    if missing:
        raise UserError(f"{where}: not a finished run directory ({', '.join(missing)} "
                        "missing)")
    if "config.json" in needs:
        read_run_config(folder / "config.json")
    return folder


def load_keras_model(model_file: Path, compile: bool = False) -> keras.Model:
    """A saved Keras model; UserError in one line for a file Keras cannot load (Keras raises
    ValueError, OSError, zipfile errors, ..., over several lines, and calls a file that is no
    zip archive "File not found")."""
    import zipfile

    import keras

    if not zipfile.is_zipfile(model_file):
        raise UserError(f"{model_file}: not a loadable Keras model (not a .keras zip archive)")
    try:
        return keras.saving.load_model(model_file, compile=compile)
    except Exception as exc:  # noqa: BLE001 - any failure means this file is unusable
        raise UserError(f"{model_file}: not a loadable Keras model ({type(exc).__name__}: "
                        f"{first_line(exc)})") from None


def load_run_model(run_dir: str, flag: str, class_names: list[str],
                   input_shape: tuple) -> keras.Model:
    """The model of the finished run in ``run_dir``, checked to have the new run's classes and
    input shape; ``flag`` names the option in the errors."""
    folder = check_finished_run(run_dir, flag)
    model_file, config_file = folder / "model.keras", folder / "config.json"
    run_classes = read_run_config(config_file)["class_names"]
    if run_classes != class_names:
        raise UserError(f"{flag} {run_dir}: its classes ({', '.join(run_classes or [])}) "
                        f"differ from this data's ({', '.join(class_names)})")
    model = load_keras_model(model_file)
    if tuple(model.input_shape[1:]) != tuple(input_shape):
        raise UserError(f"{flag} {run_dir}: it takes images of shape "
                        f"{tuple(model.input_shape[1:])}, this run {tuple(input_shape)}")
    return model


def start_from(model: keras.Model, run_dir: str, class_names: list[str]) -> None:
    """Copy every weight (BatchNorm statistics included) of a finished run's model into
    ``model``, which must have the same architecture and width."""
    source = load_run_model(run_dir, "--init-from", class_names, model.input_shape[1:])
    weights = source.get_weights()
    if [w.shape for w in weights] != [tuple(v.shape) for v in model.weights]:
        settings = read_run_config(Path(run_dir) / "config.json")["settings"]
        raise UserError(f"--init-from {run_dir}: its model ({settings.get('arch')} at width "
                        f"{settings.get('width')}, {source.count_params():,} parameters) differs "
                        f"from this run's ({model.count_params():,} parameters): pass the same "
                        "--arch and --width")
    model.set_weights(weights)
