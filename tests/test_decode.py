"""source.decode on real files: every size, colour mode, format, orientation and bad kind."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cifar_ray import config
from cifar_ray.source.decode import BadImage, Decoder, decode_image
from tests import image_files

RED_MODES = {"RGB", "P", "RGBA", "CMYK"}  # modes that keep the picture's red mark


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return image_files.write_odd_images(tmp_path_factory.mktemp("odd"))


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return image_files.write_bad_images(tmp_path_factory.mktemp("bad"))


def png(img: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def is_red(pixel: np.ndarray) -> bool:
    return bool(pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60)


@pytest.mark.parametrize("resize", config.RESIZE_MODES)
def test_every_size_mode_and_format_decodes_to_the_input_size(odd, resize):
    assert len({o.mode for o in odd}) >= 7 and len({o.path.suffix for o in odd}) == 6
    for image in odd:
        pixels = decode_image(image.path.read_bytes(), 75, resize)
        assert pixels.shape == (75, 75, 3) and pixels.dtype == np.uint8, image.path.name
        if resize == "squash":  # the red quarter stays top-left whatever the file's shape
            corner, far = pixels[3, 3], pixels[-3, -3]
            if image.mode in RED_MODES:
                assert is_red(corner) and not is_red(far), (image.path.name, corner, far)
            else:  # greys: red's luma, 76 (bilevel: dithered black and white, averaged)
                assert corner[0] == corner[1] == corner[2] and 20 < corner[0] < 130, image.path


# EXIF orientation -> the stored pixels of a displayed image D (numpy's rot90 turns
# anticlockwise): what a camera writes for each tag, per the EXIF specification.
STORED = {
    1: lambda d: d,
    2: np.fliplr,
    3: lambda d: np.rot90(d, 2),
    4: np.flipud,
    5: lambda d: d.transpose(1, 0, 2),
    6: lambda d: np.rot90(d, 1),
    7: lambda d: np.rot90(d, 2).transpose(1, 0, 2),
    8: lambda d: np.rot90(d, -1),
}


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_exif_orientation_puts_the_marked_corner_top_left(orientation):
    displayed = np.asarray(image_files.picture(96, 64))
    stored = Image.fromarray(np.ascontiguousarray(STORED[orientation](displayed)))
    exif = Image.Exif()
    exif[image_files.ORIENTATION] = orientation
    pixels = decode_image(png(stored, "JPEG", exif=exif, quality=95), 32, "squash")
    quarters = [pixels[4, 4], pixels[4, -4], pixels[-4, 4], pixels[-4, -4]]
    assert [is_red(q) for q in quarters] == [True, False, False, False], quarters


def test_a_large_jpeg_is_drafted_and_rotated_like_the_full_decode(odd):
    rotated = next(o for o in odd if o.path.name.startswith("exif6"))
    data = rotated.path.read_bytes()
    pixels = decode_image(data, 75, "center-crop")
    assert is_red(pixels[3, 3]) and not is_red(pixels[-3, -3])
    with Image.open(io.BytesIO(data)) as full:  # no draft: every pixel decoded, then resized
        exact = np.asarray(
            full.transpose(Image.Transpose.ROTATE_270).resize(
                (75, 75), Image.Resampling.BILINEAR, box=(0, 500, 3000, 3500)
            )
        )
    assert np.abs(pixels.astype(int) - exact).mean() < 4


def test_colour_modes_convert_to_rgb_as_documented():
    half = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    half.paste((0, 0, 255, 0), (0, 4, 8, 8))  # bottom half transparent blue
    on_white = decode_image(png(half), 8, "squash")
    assert is_red(on_white[0, 0]) and (on_white[-1, -1] == 255).all()  # alpha on white
    grey16 = Image.fromarray(np.full((8, 8), 0x8000, np.uint16))
    assert (decode_image(png(grey16), 8, "squash") == 128).all()  # the top 8 bits, not 255
    cyan = decode_image(png(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), "JPEG"), 8, "squash")
    assert cyan[0, 0, 0] < 30 and (cyan[0, 0, 1:] > 225).all()
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert (decode_image(png(palette, "GIF"), 8, "squash") == [10, 200, 30]).all()
    shown = decode_image(png(palette, transparency=1), 8, "squash")  # index 1 is transparent
    assert (shown == 255).all()


def thirds(width: int, height: int) -> Image.Image:
    """Red, green and blue vertical bands."""
    img = Image.new("RGB", (width, height), (255, 0, 0))
    img.paste((0, 255, 0), (width // 3, 0, 2 * width // 3, height))
    img.paste((0, 0, 255), (2 * width // 3, 0, width, height))
    return img


def test_the_three_resize_modes():
    data = png(thirds(300, 100))
    squash = decode_image(data, 30, "squash")
    assert is_red(squash[15, 2]) and squash[15, 15, 1] == 255 and squash[15, -2, 2] == 255
    crop = decode_image(data, 30, "center-crop")[:, 1:-1]  # the centred 100x100: green (the
    assert (crop[..., 1] == 255).all() and (crop[..., [0, 2]] == 0).all()  # edge: antialiased)
    pad = decode_image(data, 30, "pad")  # 30x10 inside, black above and below
    assert (pad[:9] == 0).all() and (pad[-9:] == 0).all() and is_red(pad[15, 2])


def test_each_bad_kind_is_refused_with_its_reason(bad):
    assert len(bad) == 6
    for path, kind in bad.items():
        with pytest.raises(BadImage) as caught:
            decode_image(path.read_bytes(), 75)
        assert caught.value.kind == kind, (path.name, str(caught.value))
    reasons = {p.name: str(_refusal(p.read_bytes())) for p in bad}
    assert reasons["bomb.png"] == "too many pixels (100000000 > 89478485)"
    assert reasons["one_pixel.png"] == "too small (1x1)"
    assert reasons["empty.jpg"] == "empty file" and reasons["text.jpg"] == "not an image"
    assert reasons["truncated.jpg"].startswith("truncated (image file is truncated")


def _refusal(data: bytes, **options) -> BadImage:
    try:
        decode_image(data, 75, **options)
    except BadImage as bad:
        return bad
    raise AssertionError("decoded")


def test_the_pixel_limit_is_checked_before_any_pixel_is_decoded():
    header_only = image_files.bomb_png(image_files.BOMB_SIDE)[:100]  # IHDR, a bit of IDAT
    assert _refusal(header_only).kind == "too many pixels"
    assert _refusal(header_only, max_pixels=None).kind == "truncated"  # what decoding finds
    small = png(image_files.picture(64, 48))
    assert str(_refusal(small, max_pixels=1000)) == "too many pixels (3072 > 1000)"
    assert decode_image(small, 75, max_pixels=None).shape == (75, 75, 3)


def test_formats_outside_the_list_are_not_images():
    assert _refusal(png(image_files.picture(64, 48), "PPM")).kind == "not an image"
    with pytest.raises(ValueError, match="resize must be one of"):
        decode_image(png(image_files.picture(64, 48)), 75, "stretch")


def test_the_default_limit_is_pillows():
    code = "from PIL import Image; print(Image.MAX_IMAGE_PIXELS)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert int(shown.stdout) == config.MAX_PIXELS


def test_the_decoder_keeps_order_and_returns_bad_images_in_place(odd, bad):
    blobs = [o.path.read_bytes() for o in odd[:4]] + [p.read_bytes() for p in bad]
    blobs.insert(2, blobs.pop())  # a bad one among the good
    with Decoder() as decoder:
        assert decoder.threads == len(os.sched_getaffinity(0))
        out = decoder.decode(blobs, 48, "pad")
    assert len(out) == len(blobs)
    for blob, result in zip(blobs, out, strict=True):
        try:
            expected = decode_image(blob, 48, "pad")
        except BadImage as refused:
            assert isinstance(result, BadImage) and str(result) == str(refused)
        else:
            assert np.array_equal(result, expected)
    assert isinstance(out[2], BadImage)
    with pytest.raises(RuntimeError):  # closed: the pool takes no more work
        decoder.decode(blobs[:1], 48)
