"""What the conversion stage reads from a training run directory (and nothing else)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_runtime.errors import UserError
from edge_runtime.manifest import file_sha256
from edgekit.train.finished_run import check_finished_run, load_keras_model, read_run_config
from edgekit.train.labels import read_labels


@dataclass
class TrainedRun:
    """A finished run: its Keras model, class names and resolved training settings."""

    path: Path
    model: object          # keras.Model
    class_names: list[str]
    config: dict           # config.json as written by the training stage
    model_sha256: str

    @property
    def image_size(self) -> int:
        return int(self.config["input"]["shape"][0])


def load_run(run_dir: Path) -> TrainedRun:
    """Load RUN_DIR/model.keras, labels.txt and config.json, checking they fit together."""
    run_dir = check_finished_run(run_dir)
    model_file = run_dir / "model.keras"
    model = load_keras_model(model_file)
    config = read_run_config(run_dir / "config.json")
    class_names = read_labels(run_dir)
    expected = tuple(config["input"]["shape"])
    shape = tuple(model.input_shape[1:])
    if shape != expected or len(shape) != 3 or shape[2] != 3:
        raise UserError(f"{model_file}: input shape {shape} is not the run's {expected} "
                        "(expected height x width x 3)")
    if model.output_shape[-1] != len(class_names):
        raise UserError(f"{model_file}: {model.output_shape[-1]} outputs but labels.txt names "
                        f"{len(class_names)} classes")
    return TrainedRun(run_dir, model, class_names, config, file_sha256(model_file))
