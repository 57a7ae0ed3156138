"""edge_runtime: what goes onto the device.

Imports numpy, pillow and one interpreter (ai-edge-litert, tflite-runtime or onnxruntime, only
when a model is loaded), nothing from the other stages and never TensorFlow. This stage owns
the one preprocessing function every other stage calls.
"""
from .classifier import Classifier, LabelScore, Prediction
from .errors import ImageReadError, UserError
from .preprocess import NORM_MEAN, NORM_STD, load_pixels, scale_pixels

__all__ = ["NORM_MEAN", "NORM_STD", "Classifier", "ImageReadError", "LabelScore", "Prediction",
           "UserError", "load_pixels", "scale_pixels"]
