"""A finished run's model as the starting point of another run (``--init-from``) or as its
teacher (``--teacher``), checked to fit the new run before anything is written."""
from __future__ import annotations

import json
from pathlib import Path

import keras

from edge_runtime.errors import UserError


def load_run_model(run_dir: str, flag: str, class_names: list[str],
                   input_shape: tuple) -> keras.Model:
    """The model of the finished run in ``run_dir``, checked to have the new run's classes and
    input shape; ``flag`` names the option in the errors."""
    folder = Path(run_dir)
    model_file, config_file = folder / "model.keras", folder / "config.json"
    if not model_file.is_file() or not config_file.is_file():
        raise UserError(f"{flag} {run_dir}: not a finished run directory (needs model.keras "
                        "and config.json)")
    run_classes = json.loads(config_file.read_text()).get("class_names")
    if run_classes != class_names:
        raise UserError(f"{flag} {run_dir}: its classes ({', '.join(run_classes or [])}) "
                        f"differ from this data's ({', '.join(class_names)})")
    model = keras.saving.load_model(model_file, compile=False)
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
        settings = json.loads((Path(run_dir) / "config.json").read_text()).get("settings", {})
        raise UserError(f"--init-from {run_dir}: its model ({settings.get('arch')} at width "
                        f"{settings.get('width')}, {source.count_params():,} parameters) differs "
                        f"from this run's ({model.count_params():,} parameters): pass the same "
                        "--arch and --width")
    model.set_weights(weights)
