"""The one preprocessing path: decoded image -> model input.

Training, calibration, benchmarks and the camera all call these functions, so every stage sees
identical arrays for the same image. Pixels are stored as uint8 (compact, fast to cache) and
scaled to float32 only when they enter a model: ``(pixel - NORM_MEAN) / NORM_STD``.
"""
from __future__ import annotations

import functools
import io
import os
import struct
import sys
from typing import Optional, Protocol, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageReadError, printable

# Scalar normalization (MediaPipe accepts scalars only; see PITFALLS.md): maps 0..255 to 0..1.
NORM_MEAN = 0.0
NORM_STD = 255.0

# Bumped whenever the decoded pixels for a given file would change, so caches are invalidated.
# 2: large images are area-averaged over integer blocks before the bilinear resize.
# 3: large JPEGs are decoded at 1/2, 1/4 or 1/8 scale by libjpeg (open_image's decode_size).
PREPROCESS_VERSION = 3

# Images that would decode to more pixels than this are refused before decoding (a 20,000 x
# 20,000 PNG can be a few kilobytes on disk and need 1.2 GB decoded). 50 megapixels covers any
# camera, and a large JPEG decodes at a reduced scale; Pillow's own default check warns at 89
# megapixels and refuses only at twice that.
MAX_IMAGE_PIXELS = 50_000_000

ImageSource = Union[str, os.PathLike, bytes, Image.Image]

# The brands of an ISO media file's ftyp box (bytes 8-12) that mark a HEIF still image: an
# iPhone's .HEIC photos, and the same format from other cameras.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1",
                         b"msf1"})


@functools.lru_cache(maxsize=None)
def heif_readable() -> bool:
    """Whether HEIC/HEIF photos can be read: pillow-heif is installed (the heif extra), and
    its opener is then registered with Pillow, once, when the first image is opened."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


def _is_heif(source: Union[str, os.PathLike, bytes]) -> bool:
    """Whether ``source`` (a file or its bytes) starts like a HEIF image."""
    if isinstance(source, bytes):
        header = source[:12]
    else:
        try:
            with open(source, "rb") as handle:
                header = handle.read(12)
        except OSError:
            return False
    return header[4:8] == b"ftyp" and header[8:12] in HEIF_BRANDS


def open_image(source: ImageSource, decode_size: Optional[int] = None) -> Image.Image:
    """Open and fully decode an image from a path, encoded bytes or a PIL image.

    ``decode_size``: the side the image is headed for. A JPEG is then decoded at 1/2, 1/4 or
    1/8 scale (libjpeg's DCT scaling, which averages as it shrinks) while both sides stay at
    least that long: a 12-megapixel photo decodes in a seventh of the time and a 64th of the
    memory, and the pixel limit applies to what is decoded.

    Raises ImageReadError (naming the file) for missing, empty, truncated, oversized or
    non-image input.
    """
    if isinstance(source, Image.Image):
        if 0 in source.size:
            raise ImageReadError(f"<PIL image>: empty image ({source.width} x {source.height} "
                                 "pixels)")
        return source
    if not isinstance(source, (str, bytes, os.PathLike)):
        raise ImageReadError(f"expected an image file's path, its bytes, a PIL image or an "
                             f"(H, W, 3) uint8 array, got {type(source).__name__}")
    name = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    heif_readable()
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        if decode_size and image.format == "JPEG":
            image.draft(None, (decode_size, decode_size))
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise ImageReadError(f"{name}: image of {width} x {height} pixels is over the "
                                 f"{MAX_IMAGE_PIXELS:,}-pixel limit (decompression bomb?)")
        image.load()  # decode now so truncated files fail here, not later
    except FileNotFoundError:
        raise ImageReadError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{name}: is a directory, not an image") from None
    except PermissionError:
        raise ImageReadError(f"{name}: permission denied") from None
    except UnidentifiedImageError:
        # Pillow's own words repeat the name, or show "<_io.BytesIO object at 0x...>".
        reason = "a HEIC/HEIF photo: pip install pillow-heif to read it" \
            if _is_heif(source) else "no image format recognised"
        raise ImageReadError(f"{name}: not a readable image ({reason})") from None
    except Image.DecompressionBombError:
        raise ImageReadError(f"{name}: image is over Pillow's pixel limit "
                             "(decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError,
            TypeError, ZeroDivisionError, MemoryError) as exc:
        # Pillow's decoders raise a zoo of types on corrupt input; all mean "not readable".
        raise ImageReadError(f"{name}: not a readable image ({exc})") from None
    return image


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Apply EXIF orientation and convert to an (H, W, 3) uint8 RGB array.

    Grayscale, RGBA, palette and 16-bit images are converted the way a viewer shows them.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode != "RGB":
        # 16-bit and palette images go through L/RGBA first so PIL scales them correctly.
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image, dtype=np.float64)
            array = np.clip(np.round(array / (257.0 if array.max() > 255 else 1.0)), 0, 255)
            image = Image.fromarray(array.astype(np.uint8), mode="L")
        elif image.mode == "P":
            image = image.convert("RGBA")
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def square_resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """Center-crop an (H, W, 3) uint8 array to a square and resize it to (size, size, 3).

    Arrays already at size x size are returned unchanged. Larger crops are first averaged
    over integer k x k blocks (k = side // size, area averaging as in OpenCV's INTER_AREA,
    which leaves between size and 2 x size pixels), and what remains is resized bilinearly
    (as Pillow's ``reducing_gap=1``). Each pixel is read once, so a 640 x 480 camera frame
    takes about 0.1 ms here, against 0.8 ms for a bilinear resize of the whole crop.
    """
    height, width = pixels.shape[:2]
    side = min(height, width)
    factor = max(1, side // size)
    side -= side % factor
    top, left = (height - side) // 2, (width - side) // 2
    crop = pixels[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(crop)
    if factor > 1:
        crop = _block_mean(crop, factor)
        if crop.shape[0] == size:
            return crop
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(
        (size, size), Image.BILINEAR), dtype=np.uint8)


def _block_mean(square: np.ndarray, factor: int) -> np.ndarray:
    """Rounded mean over non-overlapping factor x factor blocks of a square uint8 image.

    Rows are summed with one integer reduce; the column groups (factor pixels x 3 channels,
    a tiny inner axis numpy reduces slowly) with a matrix product against a 0/1 selector,
    exact because every sum stays below 2**24 in float32.
    """
    blocks = square.shape[0] // factor
    accumulator = np.uint16 if factor * factor * 255 < 2 ** 16 else np.uint32
    rows = np.add.reduce(square.reshape(blocks, factor, -1, 3), axis=1, dtype=accumulator)
    exact = np.float32 if factor * factor * 255 < 2 ** 24 else np.float64
    sums = rows.reshape(blocks * blocks, factor * 3).astype(exact) @ _channel_selector(factor)
    area = factor * factor
    # floor((sum + area/2) / area): a rounded mean; the quotient of exact integers is never
    # close enough to the next integer for float rounding to cross it.
    mean = np.floor((sums + area // 2) / area)
    return mean.reshape(blocks, blocks, 3).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _channel_selector(factor: int) -> np.ndarray:
    """(factor*3, 3) 0/1 matrix that sums each channel over factor neighbouring pixels."""
    return np.tile(np.eye(3, dtype=np.float32), (factor, 1))


def to_rgb_square(image: Image.Image, size: int) -> np.ndarray:
    """EXIF-oriented RGB, center-cropped and resized: a (size, size, 3) uint8 array."""
    return square_resize(to_rgb_array(image), size)


def load_pixels(source: ImageSource, size: int) -> np.ndarray:
    """Decode an image file (or bytes, or PIL image) into a (size, size, 3) uint8 array."""
    return to_rgb_square(open_image(source, decode_size=size), size)


class Counter(Protocol):
    """What counts decoded files: a tqdm bar, or anything else with its ``update(n)``."""

    def update(self, n: int = 1) -> object:
        ...


def decode_files(paths: Sequence[Union[str, os.PathLike]], size: int,
                 counter: Counter) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode image files as ``load_pixels`` does, counting each on ``counter``: (uint8 pixels
    (M, size, size, 3) of the M readable ones, a mask over ``paths`` of which were readable,
    the reason each of the others was not). Training's folder reader and the device bench's
    labelled images both come through here, so both skip the same files."""
    pixels = np.empty((len(paths), size, size, 3), np.uint8)
    readable = np.ones(len(paths), bool)
    failures: list[str] = []
    for index, path in enumerate(paths):
        try:
            pixels[index] = load_pixels(path, size)
        except ImageReadError as exc:
            readable[index] = False
            failures.append(str(exc))
        counter.update(1)
    return pixels[readable], readable, failures


def warn_unreadable(failures: list[str], where: str = "") -> None:
    """One warning on stderr that counts the unreadable files (``where``: " in FOLDER") and
    names the first; nothing when there were none."""
    if failures:
        print(printable(f"warning: skipped {len(failures)} unreadable file(s){where} (first: "
                        f"{failures[0]})"), file=sys.stderr)


def scale_pixels(pixels: np.ndarray, mean: float = NORM_MEAN, std: float = NORM_STD,
                 out: Optional[np.ndarray] = None) -> np.ndarray:
    """Scale uint8 pixels (any leading shape, last axis RGB) to float32 model input:
    ``(pixel - mean) / std``, in float32. The defaults are the project's; a model file's
    metadata may name others (the MediaPipe variant takes raw pixels: mean 0, std 1).
    ``out``: a float32 array of the pixels' shape to write into instead of a new one (the
    ONNX runtime's input buffer, bound to its session)."""
    scaled = np.subtract(pixels, np.float32(mean), out=out, dtype=np.float32)
    return np.divide(scaled, np.float32(std), out=scaled)
