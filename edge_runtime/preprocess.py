"""The one preprocessing path: decoded image -> model input.

Training, calibration, benchmarks and the camera all call these functions, so every stage sees
identical arrays for the same image. Pixels are stored as uint8 (compact, fast to cache) and
scaled to float32 only when they enter a model: ``(pixel - NORM_MEAN) / NORM_STD``.
"""
from __future__ import annotations

import io
import os
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from .errors import ImageReadError

# Scalar normalization (MediaPipe accepts scalars only; see PITFALLS.md): maps 0..255 to 0..1.
NORM_MEAN = 0.0
NORM_STD = 255.0

# Bumped whenever the decoded pixels for a given file would change, so caches are invalidated.
PREPROCESS_VERSION = 1

ImageSource = Union[str, os.PathLike, bytes, Image.Image]


def open_image(source: ImageSource) -> Image.Image:
    """Open and fully decode an image from a path, encoded bytes or a PIL image.

    Raises ImageReadError (naming the file) for missing, empty, truncated or non-image input.
    """
    if isinstance(source, Image.Image):
        return source
    name = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    try:
        if isinstance(source, bytes):
            image = Image.open(io.BytesIO(source))
        else:
            image = Image.open(source)
        image.load()  # decode now so truncated files fail here, not later
    except FileNotFoundError:
        raise ImageReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{name}: is a directory, not an image") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"{name}: not a readable image ({exc})") from None
    return image


def to_rgb_square(image: Image.Image, size: int) -> np.ndarray:
    """Apply EXIF orientation, convert to RGB, center-crop to a square and resize.

    Returns a (size, size, 3) uint8 array. Images already at size x size pass through unchanged.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode != "RGB":
        # 16-bit and palette images go through RGBA/L first so PIL scales them correctly.
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image, dtype=np.float64)
            array = np.clip(np.round(array / (257.0 if array.max() > 255 else 1.0)), 0, 255)
            image = Image.fromarray(array.astype(np.uint8), mode="L")
        elif image.mode == "P":
            image = image.convert("RGBA")
        image = image.convert("RGB")
    width, height = image.size
    side = min(width, height)
    if width != height:
        left = (width - side) // 2
        top = (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_pixels(source: ImageSource, size: int) -> np.ndarray:
    """Decode an image file (or bytes, or PIL image) into a (size, size, 3) uint8 array."""
    return to_rgb_square(open_image(source), size)


def scale_pixels(pixels: np.ndarray, mean: float = NORM_MEAN, std: float = NORM_STD) -> np.ndarray:
    """Scale uint8 pixels (any leading shape, last axis RGB) to float32 model input:
    ``(pixel - mean) / std``. The defaults are the project's; a model file's metadata may
    name others (the MediaPipe variant takes raw pixels: mean 0, std 1)."""
    return (np.asarray(pixels, dtype=np.float32) - mean) / std
