from __future__ import annotations

import numpy as np
import pytest
import torch
from data_fixtures import pixels, save
from PIL import Image

from pixelwise.data.io import (
    DataError,
    ImageTooLargeError,
    convert_channels,
    image_size,
    read_image,
    read_mask_values,
)

# (extension, PIL modes that format stores)
FORMATS = [
    (".jpg", ["L", "RGB"]),
    (".png", ["L", "RGB", "RGBA", "P"]),
    (".bmp", ["L", "RGB", "P"]),
    (".tif", ["L", "RGB", "RGBA", "P"]),
    (".gif", ["L", "P"]),
]
CASES = [(ext, mode) for ext, modes in FORMATS for mode in modes]


@pytest.mark.parametrize("ext,mode", CASES)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_every_format_and_mode_reads_as_configured(tmp_path, ext, mode, channels):
    path = save(tmp_path / f"x{ext}", pixels(9, 13), mode)
    image = read_image(path, channels)
    assert image.dtype == torch.uint8
    assert tuple(image.shape) == (channels, 9, 13)
    if ext != ".jpg":  # lossless: the pixels are PIL's own conversion
        expected = np.array(Image.open(path).convert({1: "L", 3: "RGB", 4: "RGBA"}[channels]))
        expected = expected[:, :, None] if expected.ndim == 2 else expected
        difference = image.int() - torch.from_numpy(expected).permute(2, 0, 1).int()
        assert int(difference.abs().max()) <= 1  # libpng and PIL round gray differently


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path):
    values = np.array([[0, 65535], [32768, 257]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    image = read_image(path, 1)
    assert image.dtype == torch.uint8
    assert image[0, 0, 0] == 0 and image[0, 0, 1] == 255 and 127 <= image[0, 1, 0] <= 128


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_file_is_an_error_naming_it(tmp_path, ext):
    good = save(tmp_path / f"good{ext}", pixels(32, 32))
    bad = tmp_path / f"bad{ext}"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(DataError, match="bad"):
        read_image(bad)


@pytest.mark.parametrize("content", [b"", b"not an image at all", bytes(range(256)) * 4])
def test_corrupt_file_is_an_error_naming_it(tmp_path, content):
    path = tmp_path / "corrupt.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match="corrupt.png"):
        read_image(path)


@pytest.mark.parametrize(
    "content,says",
    [
        (b"", "empty file (0 bytes)"),
        (
            b"<!DOCTYPE html><html><body>404 Not Found",
            "not an image (40 bytes of text starting '<!DOCTYPE html>",
        ),
        (b"PK\x03\x04" + bytes(60), "not an image (64 bytes starting 50 4b 03 04"),
    ],
)
@pytest.mark.parametrize("name", ["x.jpg", "x.png", "x.bmp"])
def test_empty_and_non_image_files_say_so_naming_the_file(tmp_path, content, says, name):
    path = tmp_path / name
    path.write_bytes(content)
    for read in (read_image, read_mask_values, image_size):
        with pytest.raises(DataError) as caught:
            read(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: {says}") and "BytesIO" not in message


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="nope.jpg"):
        read_image(tmp_path / "nope.jpg")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    # 3000 x 3000 of one colour: a few kilobytes on disk, 27 MB decoded
    path = tmp_path / "bomb.png"
    Image.new("RGB", (3000, 3000)).save(path)
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageTooLargeError, match="max_image_pixels"):
        read_image(path, 3, max_pixels=1_000_000)
    with pytest.raises(ImageTooLargeError):
        image_size(path, max_pixels=1_000_000)
    assert read_image(path, 1, max_pixels=10_000_000).shape == (1, 3000, 3000)


def test_image_size_reads_the_header(tmp_path):
    path = save(tmp_path / "x.jpg", pixels(7, 11))
    assert image_size(path) == (7, 11)


def test_palette_mask_gives_indices_not_colours(tmp_path):
    indices = np.array([[0, 1, 2], [20, 255, 3]], dtype=np.uint8)
    image = Image.frombytes("P", (3, 2), indices.tobytes())
    image.putpalette([v for i in range(256) for v in (255 - i, i, 7)])
    image.save(tmp_path / "m.png")
    assert torch.equal(read_mask_values(tmp_path / "m.png"), torch.from_numpy(indices))


def test_rgb_mask_values_are_channels_first(tmp_path):
    array = pixels(4, 5)
    save(tmp_path / "m.png", array)
    values = read_mask_values(tmp_path / "m.png")
    assert torch.equal(values, torch.from_numpy(array).permute(2, 0, 1))


def test_convert_channels_between_gray_rgb_rgba():
    gray = torch.randint(0, 256, (1, 3, 4), dtype=torch.uint8)
    rgb = convert_channels(gray, 3)
    assert rgb.shape == (3, 3, 4) and torch.equal(rgb[2], gray[0])
    rgba = convert_channels(gray, 4)
    assert rgba.shape == (4, 3, 4) and bool((rgba[3] == 255).all())
    assert convert_channels(rgba, 3).shape == (3, 3, 4)
    assert convert_channels(rgb, 1).shape == (1, 3, 4)
