"""edge_runtime: what goes onto the device.

Imports numpy, pillow and (later) one interpreter, nothing from the other stages and never
TensorFlow. This stage owns the one preprocessing function every other stage calls.
"""
from .errors import ImageReadError, UserError
from .preprocess import NORM_MEAN, NORM_STD, load_pixels, scale_pixels

__all__ = ["ImageReadError", "UserError", "NORM_MEAN", "NORM_STD", "load_pixels", "scale_pixels"]
