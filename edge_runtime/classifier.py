"""``Classifier``: one model file in, labels and probabilities out.

    from edge_runtime import Classifier
    classifier = Classifier("model_int8.tflite", threads=2)
    prediction = classifier.classify("cat.jpg", top_k=3)
    prediction.label, prediction.score, prediction.top_k

Labels and input normalization come from the file's own metadata, else from manifest.json
beside it; when that manifest lists the file, its sha256 is checked before anything runs.

``tta="flip"`` averages each image's probabilities with its mirror image's (test-time
augmentation): twice the inference work for, on CIFAR-10, about one more point of accuracy
(docs/results.md, "Test-time augmentation (flip)"). Use it only where a mirrored image shows
the same class, as training with random flips already assumed.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple, Optional, Sequence, Union

import numpy as np
from PIL import Image

from .errors import ImageReadError, UserError, printable
from .interpreters import load_model, model_format
from .manifest import MANIFEST_NAME, check_sha256, info_from_manifest, manifest_entry
from .model_metadata import (
    MetadataError,
    ModelInfo,
    info_from_properties,
    read_tflite_info,
)
from .preprocess import load_pixels, square_resize

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]
TTA_MODES = ("none", "flip")  # test-time augmentation: none, or average with the mirror image
# Up to this many classes the top 5 are ranked by Python's sorted(), beyond it by np.argsort.
# Microseconds for the two, labels attached (timeit, a 2-core AMD EPYC): 2.5 and 3.9 at
# 10 classes, 4.9 and 4.2 at 60, 7.5 and 4.9 at 100. At 10 classes that is 2 points of
# classify's overhead over a 0.08 ms int8 inference (docs/results.md, "Runtime").
PYTHON_RANKING_MAX_CLASSES = 50


class LabelScore(NamedTuple):
    """One class and its probability."""

    label: str
    score: float


class Prediction(NamedTuple):
    """The top class, its probability, and the k best classes in order."""

    label: str
    score: float
    top_k: list

    def to_dict(self) -> dict:
        """JSON-ready form: {label, score, top_k: [{label, score}, ...]}."""
        return {"label": self.label, "score": self.score,
                "top_k": [{"label": label, "score": score} for label, score in self.top_k]}


class Classifier:
    """A deployed model (.tflite or .onnx) with its labels and preprocessing.

    ``threads``: interpreter threads (None: the interpreter's default). ``backend``: "auto",
    "ai-edge-litert", "tflite-runtime" or "onnxruntime"; ``.backend`` says which one runs.
    ``tta``: "none", or "flip" to average every image with its left-right mirror.
    ``verify``: with a manifest.json beside the file, refuse a file whose sha256 it does not
    record (False: run it with a warning); a file it does not list runs with a warning.
    """

    def __init__(self, model_path: Union[str, os.PathLike], threads: Optional[int] = None,
                 backend: str = "auto", tta: str = "none", verify: bool = True):
        self.path = Path(model_path)
        if threads is not None and threads < 1:
            raise UserError(f"threads must be at least 1, got {threads}")
        if tta not in TTA_MODES:
            raise UserError(f"unknown test-time augmentation {tta!r}: choose one of "
                            f"{', '.join(TTA_MODES)}")
        self.tta = tta
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise UserError(f"{self.path}: no such model file") from None
        except IsADirectoryError:
            raise UserError(f"{self.path}: a folder, not a model file: give one of the .tflite "
                            "or .onnx files edgekit convert wrote") from None
        except PermissionError as exc:
            raise UserError(f"{self.path}: cannot read the model file ({exc.strerror})") \
                from None
        manifest, entry = manifest_entry(self.path)
        if entry is not None:
            check_sha256(self.path, data, entry, required=verify)
        elif manifest is not None:  # a renamed or modified copy beside the manifest, say
            print(f"warning: {printable(str(self.path))}: not checked (the {MANIFEST_NAME} "
                  "beside it does not list it)", file=sys.stderr)
        self.model = load_model(self.path, threads, backend)
        info = self._model_info(data, manifest, entry)
        self.image_size = self.model.image_size
        if info.image_size not in (None, self.image_size):
            raise MetadataError(f"{self.path}: metadata says {info.image_size} px images but "
                                f"the model takes {self.image_size} px")
        self.labels = list(info.labels)
        self.norm_mean, self.norm_std = info.norm_mean, info.norm_std
        self.model.set_normalization(self.norm_mean, self.norm_std)
        self._pixels_shape = (self.image_size, self.image_size, 3)
        classes = self.model.predict_pixels(
            np.zeros((1, self.image_size, self.image_size, 3), np.uint8)).shape
        if classes[-1] != len(self.labels):
            raise MetadataError(f"{self.path}: {len(self.labels)} labels for a model with "
                                f"{classes[-1]} outputs")

    @property
    def backend(self) -> str:
        """The interpreter running the model: ai-edge-litert, tflite-runtime or onnxruntime."""
        return self.model.backend

    def __repr__(self) -> str:
        return (f"Classifier({str(self.path)!r}, backend={self.backend!r}, "
                f"classes={len(self.labels)}, image_size={self.image_size}, tta={self.tta!r})")

    def _model_info(self, data: bytes, manifest: Optional[dict],
                    entry: Optional[dict]) -> ModelInfo:
        try:
            if model_format(self.path) == "tflite":
                return read_tflite_info(data, str(self.path))
            return info_from_properties(self.model.metadata_properties(), str(self.path))
        except MetadataError as exc:
            if entry is None:
                raise MetadataError(f"{exc}; and no manifest.json beside it lists the file, "
                                    "so labels and normalization are unknown") from None
            return info_from_manifest(manifest, entry, str(self.path))

    def preprocess(self, image: ImageInput) -> np.ndarray:
        """One image (path, encoded bytes, PIL image or uint8 RGB array of any size) as the
        model's (S, S, 3) uint8 pixels: EXIF orientation, RGB, center crop, resize."""
        if isinstance(image, np.ndarray):
            if image.shape == self._pixels_shape and image.dtype == np.uint8:
                return image  # already model-sized pixels: the camera's and benchmarks' path
            if image.dtype != np.uint8:
                raise ImageReadError(f"expected uint8 RGB pixels, got a {image.dtype} array")
            if image.ndim == 2:
                image = np.repeat(image[:, :, None], 3, axis=2)
            if image.ndim == 3 and image.shape[2] == 4:
                # picamera2's default frames (XBGR8888, XRGB8888): which three channels are
                # R, G and B depends on the format, so the caller says, not a guess here.
                raise ImageReadError(f"expected an (H, W, 3) RGB array, got shape {image.shape}"
                                     ": pass the R, G, B channels (frame[..., :3] for "
                                     "picamera2's XBGR8888), or capture in BGR888")
            if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
                raise ImageReadError(f"expected an (H, W, 3) RGB array, got shape "
                                     f"{image.shape}")
            return square_resize(image, self.image_size)
        return load_pixels(image, self.image_size)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) for preprocessed uint8 pixels (N, S, S, 3); with
        ``tta="flip"`` the mean of the images' and their mirror images' probabilities."""
        if self.tta == "none":
            return self.model.predict_pixels(pixels)
        # Two calls at the caller's batch size rather than one at twice it: files with a
        # fixed batch of 1 work too, and the camera's interpreter is never resized.
        mirrored = self.model.predict_pixels(pixels[:, :, ::-1])
        return (self.model.predict_pixels(pixels) + mirrored) / 2

    def classify(self, image_or_batch: Union[ImageInput, Sequence[ImageInput]],
                 top_k: int = 5) -> Union[Prediction, list[Prediction]]:
        """Top-k labels for one image (a Prediction) or a batch (a list): a list of images,
        or an (N, H, W, 3) uint8 array. Raises ImageReadError naming a bad image."""
        if top_k < 1:
            raise UserError(f"top_k must be at least 1, got {top_k}")
        if isinstance(image_or_batch, (list, tuple)) or (
                isinstance(image_or_batch, np.ndarray) and image_or_batch.ndim == 4):
            if len(image_or_batch) == 0:
                return []
            pixels = np.stack([self.preprocess(image) for image in image_or_batch])
            return [self._prediction(row, top_k) for row in self.probabilities(pixels)]
        pixels = self.preprocess(image_or_batch)
        return self._prediction(self.probabilities(pixels[None])[0], top_k)

    def _prediction(self, probabilities: np.ndarray, top_k: int) -> Prediction:
        # Ties (common with int8 outputs, which take only 256 values) go to the lower class
        # index, as argmax does everywhere else: both rankings below are stable.
        if len(probabilities) <= PYTHON_RANKING_MAX_CLASSES:
            scores = probabilities.tolist()
            best = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)[:top_k]
            top = [scores[i] for i in best]
        else:
            ranked_indices = np.argsort(-probabilities, kind="stable")[:top_k]
            best, top = ranked_indices.tolist(), probabilities[ranked_indices].tolist()
        labels = self.labels
        ranked = [LabelScore(labels[i], score) for i, score in zip(best, top)]
        return Prediction(ranked[0].label, ranked[0].score, ranked)
