"""The shared preprocessing: every image mode becomes (size, size, 3) uint8; scaling is exact."""
import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edge_runtime.errors import ImageReadError
from edge_runtime.image_paths import expand_image_paths
from edge_runtime.preprocess import (
    MAX_IMAGE_PIXELS,
    NORM_MEAN,
    NORM_STD,
    decode_files,
    heif_readable,
    load_pixels,
    open_image,
    scale_pixels,
    to_rgb_square,
)


def test_scale_pixels_maps_0_255_to_0_1():
    pixels = np.array([[[0, 128, 255]]], dtype=np.uint8)
    scaled = scale_pixels(pixels)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, (pixels.astype(np.float32) - NORM_MEAN) / NORM_STD)
    assert scaled.min() == 0.0 and scaled.max() == 1.0


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK", "LA"])
def test_every_mode_becomes_rgb_uint8(tmp_path, mode):
    base = Image.new("RGB", (40, 40), (10, 120, 250))
    image = base.convert(mode) if mode != "I;16" else Image.new("I;16", (40, 40), 40000)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    image.save(path)
    pixels = load_pixels(path, 32)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    if mode == "I;16":
        assert pixels[0, 0, 0] == round(40000 / 257)


def test_odd_size_is_center_cropped_then_resized(tmp_path):
    pixels = np.zeros((20, 60, 3), np.uint8)
    pixels[:, 20:40] = 255  # the centre square is white, the sides black
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    out = load_pixels(tmp_path / "wide.png", 10)
    assert out.shape == (10, 10, 3)
    assert out.min() == 255


def test_exif_orientation_is_applied():
    pixels = np.zeros((10, 30, 3), np.uint8)  # wide image
    pixels[:5] = 255                          # top half white
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes(), quality=100)
    shown = load_pixels(buffer.getvalue(), 10)
    # Turned upright, the white top half becomes the right half of the centre crop.
    assert shown.shape == (10, 10, 3)
    assert shown[:, 7:].mean() > 200 and shown[:, :3].mean() < 50
    unrotated = load_pixels(image, 10)
    assert unrotated[:3].mean() > 200 and unrotated[7:].mean() < 50


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_unreadable_files_raise_image_read_error(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match="bad.png"):
        load_pixels(path, 32)


def test_truncated_jpeg_raises(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[:200])
    with pytest.raises(ImageReadError, match="cut.jpg"):
        load_pixels(path, 32)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        load_pixels(tmp_path / "missing.jpg", 32)


class _Tally:
    """A stand-in for a progress bar: counts what ``update`` is told."""

    def __init__(self):
        self.n = 0

    def update(self, n=1):
        self.n += n


def test_decoding_many_files_skips_and_names_the_unreadable(tmp_path):
    colours = [(200, 0, 0), (0, 200, 0)]
    paths = []
    for index, colour in enumerate(colours):
        paths.append(tmp_path / f"{index}.png")
        Image.new("RGB", (40, 40), colour).save(paths[-1])
    paths.insert(1, tmp_path / "junk.png")
    paths[1].write_bytes(b"not an image")
    tally = _Tally()
    pixels, readable, failures = decode_files(paths, 16, tally)
    assert readable.tolist() == [True, False, True]
    assert pixels.shape == (2, 16, 16, 3) and pixels.dtype == np.uint8
    assert pixels[:, 8, 8].tolist() == [list(c) for c in colours]
    assert len(failures) == 1 and "junk.png" in failures[0]
    assert tally.n == 3


def test_large_frames_are_area_averaged_exactly():
    from edge_runtime.preprocess import square_resize

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    out = square_resize(frame, 32)
    crop = frame[:, 80:560].astype(np.int64)  # 480 = 15 x 32: pure 15 x 15 block means
    expected = (crop.reshape(32, 15, 32, 15, 3).sum(axis=(1, 3)) + 112) // 225
    assert out.dtype == np.uint8 and np.array_equal(out, expected)
    # BGR frames flipped after shrinking give the same pixels as flipping first
    assert np.array_equal(square_resize(np.ascontiguousarray(frame[..., ::-1]), 32),
                          out[..., ::-1])


@pytest.mark.parametrize("shape", [(500, 500), (333, 517), (47, 90), (1000, 64)])
def test_resizing_stays_close_to_a_plain_bilinear_resize(shape):
    from edge_runtime.preprocess import square_resize

    # a smooth picture, where any sound resampling method gives nearly the same pixels
    small = np.random.default_rng(1).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    picture = np.asarray(Image.fromarray(small).resize(shape[::-1], Image.BICUBIC))
    side = min(shape)
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    reference = np.asarray(Image.fromarray(picture[top:top + side, left:left + side]).resize(
        (32, 32), Image.BILINEAR)).astype(int)
    out = square_resize(picture, 32)
    assert out.shape == (32, 32, 3)
    assert np.abs(out.astype(int) - reference).mean() < 2.0


def test_large_jpegs_are_decoded_at_a_reduced_scale(tmp_path):
    # A phone photo headed for 32 pixels: libjpeg decodes it at 1/8 scale, averaging as it
    # shrinks, to nearly the pixels of the full decode (6x faster on 2048 x 1536 photos).
    small = np.random.default_rng(2).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    photo = tmp_path / "photo.jpg"
    Image.fromarray(small).resize((2048, 1536), Image.BICUBIC).save(photo, quality=90)
    assert open_image(photo, decode_size=32).size == (256, 192)
    assert open_image(photo, decode_size=400).size == (1024, 768)  # both sides stay >= 400
    assert open_image(photo).size == (2048, 1536)
    full = to_rgb_square(open_image(photo), 32).astype(int)
    assert np.abs(load_pixels(photo, 32) - full).max() <= 2
    # The pixel limit counts what is decoded: too large in full, fine at 1/8.
    huge = tmp_path / "huge.jpg"
    Image.new("RGB", (8000, 7000), (90, 140, 30)).save(huge, quality=50)
    assert 8000 * 7000 > MAX_IMAGE_PIXELS
    with pytest.raises(ImageReadError, match="pixel limit"):
        open_image(huge)
    assert load_pixels(huge, 32)[0, 0].tolist() == pytest.approx([90, 140, 30], abs=2)


def test_heic_photos_are_read_with_pillow_heif(tmp_path):
    # An iPhone's photos are HEIC: read through pillow-heif (the heif extra, which CI installs),
    # and found in folders; without it the error says what to install.
    pytest.importorskip("pillow_heif")
    assert heif_readable()
    pixels = np.kron(np.random.default_rng(3).integers(0, 256, (4, 4, 3), dtype=np.uint8),
                     np.ones((16, 16, 1), np.uint8))  # 64 x 64, in flat 16-pixel blocks
    photo = tmp_path / "IMG_0001.HEIC"
    Image.fromarray(pixels).save(photo, format="HEIF", quality=100)
    assert np.abs(load_pixels(photo, 64).astype(int) - pixels).mean() < 3
    assert list(expand_image_paths([str(tmp_path)])) == [photo]
    # Pillow keeps an opener once registered, so the missing package is tried in a child.
    code = ("import sys; sys.modules['pillow_heif'] = None\n"
            "from edge_runtime.preprocess import load_pixels\n"
            "load_pixels(sys.argv[1], 32)")
    result = subprocess.run([sys.executable, "-c", code, str(photo)], capture_output=True,
                            text=True, timeout=120)
    assert result.stderr.strip().splitlines()[-1] == (
        f"edge_runtime.errors.ImageReadError: {photo}: not a readable image (a HEIC/HEIF "
        "photo: pip install pillow-heif to read it)")
