"""Reading image and mask files into uint8 tensors, with errors that name the file.

JPEG and PNG are decoded by ``torchvision.io`` (libjpeg-turbo, libpng: about three
times faster than PIL for small files and straight into a tensor); BMP, TIFF, GIF and
anything else PIL opens go through PIL. Every file is first opened lazily with PIL,
which reads only the header, so that an image above ``max_pixels`` (a decompression
bomb: a few kilobytes that decode to gigabytes) is refused before it is decoded.

A zero-byte file is an "empty file" and a file no decoder recognises "not an image"
(with what it starts with: an HTML error page saved under an image's name is common),
each naming the file.

torchvision 0.29 deprecates its decoders in favour of TorchCodec (not a dependency here);
that one warning is silenced, and ``_decode_with_pil`` is the fallback when they go.
torchvision's palette-PNG-to-RGBA conversion misplaces channels, so that case uses PIL.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg, decode_png
from torchvision.transforms.v2 import functional as F

from ..errors import UserError

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".gif",
    ".webp",
    ".ppm",
    ".pgm",
)
_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_DEPRECATION = "The image decoding and encoding capabilities of TorchVision are deprecated"
_TV_MODES = {1: ImageReadMode.GRAY, 3: ImageReadMode.RGB, 4: ImageReadMode.RGB_ALPHA}


class DataError(UserError):
    """A data file or folder that cannot be used; the message names it and says what would.

    Raised in a loader worker, it reaches the main process re-made by PyTorch around a
    "Caught DataError in DataLoader worker process 0" header and the worker's traceback;
    the original one-line message is recovered from its last line, so that the CLI's
    one-line error still names the file.
    """

    kind = "unreadable"  # what `pixelwise data check` files it under

    def __init__(self, message: str = "") -> None:
        if message.startswith("Caught ") and "\nOriginal Traceback" in message:
            _, found, original = message.rstrip().splitlines()[-1].partition(": ")
            message = original if found else message
        super().__init__(message)


class ImageTooLargeError(DataError):
    """An image above ``data.max_image_pixels``."""

    kind = "too_large"


class NotAnImageError(DataError):
    """A file with an image's name that holds something else (an HTML error page, text)."""

    kind = "not_an_image"


class EmptyFileError(DataError):
    """A zero-byte file (an interrupted download or copy)."""

    kind = "empty_file"


class MaskSizeError(DataError):
    """A mask whose size is not its image's (nor, with ``data.resize_masks=nearest``, a
    uniform scale of it)."""

    kind = "size_mismatch"


class MaskValueError(DataError):
    """Mask values that are neither a class nor ignored (they would crash the loss)."""

    kind = "out_of_range"


def is_image_file(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def check_channels(in_channels: int) -> None:
    if in_channels not in _PIL_MODES:
        raise DataError(
            f"data.in_channels={in_channels}: image files can be read as 1 (grayscale), "
            "3 (RGB) or 4 (RGBA) channels"
        )


def _refuse_large(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{path}: {width}x{height} = {width * height:,} pixels is above "
            f"data.max_image_pixels={max_pixels:,} (a decompression bomb?); "
            "raise data.max_image_pixels if the file is genuine"
        )


def _open_header(data: bytes, path: Path, max_pixels: int) -> Image.Image:
    """PIL's lazy open (header only), refusing images above ``max_pixels``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(f"{path}: refused, {err}") from err
    except Image.UnidentifiedImageError as err:
        raise NotAnImageError(
            f"{path}: not an image ({_first_bytes(data)}: no image format PIL knows); "
            "replace it with the picture or remove it"
        ) from err
    except Exception as err:  # PIL raises several types for unknown or broken headers
        raise DataError(f"{path}: cannot read image ({type(err).__name__}: {err})") from err
    _refuse_large(path, *image.size, max_pixels)
    return image


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_or_png_header(data: bytes) -> tuple[str, int, int, bool] | None:
    """(format, width, height, palette) of a PNG (its IHDR chunk) or a JPEG (its
    start-of-frame segment), read from the bytes in microseconds; None for anything
    else, which then goes through PIL."""
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) >= 26:
        width, height = struct.unpack(">II", data[16:24])
        return "PNG", width, height, data[25] == 3  # colour type 3: palette
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return "JPEG", width, height, False
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read file ({err.strerror or err})") from err
    if not data:
        raise EmptyFileError(f"{path}: empty file (0 bytes); copy it again or remove it")
    return data


def _first_bytes(data: bytes) -> str:
    """What a non-image file starts with, for the message: its text, or its bytes in hex."""
    head = data[:40]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        text = " ".join(head.decode("ascii").split())
        return f"{len(data):,} bytes of text starting {text[:30]!r}"
    return f"{len(data):,} bytes starting {head[:8].hex(' ')}"


def image_kind(path: str | Path) -> str:
    """``"JPEG RGB"``: a file's format and PIL mode, from its header alone."""
    try:
        with Image.open(path) as image:
            return f"{image.format} {image.mode}"
    except Exception:  # a file that decoded once but whose header PIL rejects: say so
        return "unknown"


def image_size(path: str | Path, max_pixels: int = 89_478_485) -> tuple[int, int]:
    """(height, width) from the header only."""
    path = Path(path)
    width, height = _open_header(_read_bytes(path), path, max_pixels).size
    return height, width


def read_image(
    path: str | Path, in_channels: int = 3, max_pixels: int = 89_478_485
) -> torch.Tensor:
    """A (C, H, W) uint8 tensor with ``in_channels`` channels (1 gray, 3 RGB, 4 RGBA).

    Palette and grayscale images are expanded to RGB, RGB is converted to luminance for
    one channel, alpha is dropped for three (not composited) and added as opaque for four.
    16-bit images are scaled to 8 bits.
    """
    path = Path(path)
    data = _read_bytes(path)
    header = jpeg_or_png_header(data)
    kind = header[0] if header else None
    try:
        if header is not None and _torchvision_decodes(header, in_channels):
            _refuse_large(path, header[1], header[2], max_pixels)
            raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            decode = decode_jpeg if kind == "JPEG" else decode_png
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_DEPRECATION)
                image = decode(raw, mode=_TV_MODES[in_channels])
        else:
            opened = _open_header(data, path, max_pixels)
            kind = opened.format
            image = _decode_with_pil(opened, in_channels)
    except DataError:
        raise
    except Exception as err:  # decoders raise RuntimeError/OSError/SyntaxError on bad data
        raise DataError(f"{path}: corrupt or truncated {kind or 'image'} ({_short(err)})") from err
    if image.dtype != torch.uint8:
        image = F.to_dtype(image, torch.uint8, scale=True)
    return image


def _torchvision_decodes(header: tuple[str, int, int, bool], in_channels: int) -> bool:
    kind, _, _, palette = header
    if kind == "JPEG":
        return in_channels != 4
    return not (palette and in_channels == 4)


def _decode_with_pil(image: Image.Image, in_channels: int) -> torch.Tensor:
    image.seek(0)  # the first frame of an animated GIF or multi-page TIFF
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit gray: scale to 8 bits
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        image = Image.fromarray(np.clip(array * (255.0 / top), 0, 255).astype(np.uint8))
    converted = image.convert(_PIL_MODES[in_channels])
    array = np.array(converted)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def read_mask_values(path: str | Path, max_pixels: int = 89_478_485) -> torch.Tensor:
    """A mask file's stored values, unconverted: (H, W) for palette or grayscale files
    (palette indices, not colours), (3, H, W) for RGB; alpha is dropped."""
    return read_mask_file(path, max_pixels)[0]


def read_mask_file(path: str | Path, max_pixels: int = 89_478_485) -> tuple[torch.Tensor, str]:
    """``read_mask_values`` and the file's kind (``"PNG P"``, ``"JPEG L"``: format and mode),
    which ``data check`` reports (a JPEG mask has values its annotator never drew)."""
    path = Path(path)
    data = _read_bytes(path)
    header = _open_header(data, path, max_pixels)
    kind = f"{header.format} {header.mode}"
    try:
        header.seek(0)
        mode = header.mode
        if mode in ("RGBA", "LA", "PA"):
            header = header.convert({"RGBA": "RGB", "LA": "L", "PA": "P"}[mode])
        elif mode == "1":
            header = header.convert("L")
        elif mode not in ("P", "L", "RGB", "I", "I;16", "I;16B", "I;16L"):
            header = header.convert("RGB")
        array = np.array(header)
    except Exception as err:
        raise DataError(f"{path}: corrupt or truncated mask ({_short(err)})") from err
    if array.dtype != np.uint8:  # 16/32-bit index masks
        array = array.astype(np.int64)
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return (tensor.permute(2, 0, 1).contiguous() if tensor.dim() == 3 else tensor), kind


def uniform_scale(size: tuple[int, int], target: tuple[int, int]) -> bool:
    """Whether ``size`` (height, width) is ``target`` scaled by one factor in both
    directions, up to the rounding of each side to whole pixels (DRIVE at half size:
    292x282 for 584x565). A differing aspect ratio is another crop or a wrong pairing,
    which resizing would hide."""
    (h, w), (th, tw) = size, target
    if min(h, w, th, tw) <= 0:
        return False
    # h = s*th + e1 and w = s*tw + e2 with |e| <= 1/2 give |h*tw - w*th| <= (th + tw) / 2;
    # the same from the other side when the mask is the larger one.
    return 2 * abs(h * tw - w * th) <= max(th + tw, h + w)


def resize_mask_nearest(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """An (H, W) mask at ``size`` by nearest neighbour (pixel centres, as PIL's NEAREST),
    by indexing: any dtype, and no value that is not in the mask (classes never blend)."""
    height, width = mask.shape[-2:]
    rows = ((torch.arange(size[0]) + 0.5) * (height / size[0])).long().clamp(max=height - 1)
    cols = ((torch.arange(size[1]) + 0.5) * (width / size[1])).long().clamp(max=width - 1)
    return mask[..., rows[:, None], cols[None, :]]


def convert_channels(image: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Convert an in-memory (C, H, W) uint8 image between 1, 3 and 4 channels."""
    channels = image.shape[0]
    if channels == in_channels:
        return image
    if channels == 4:
        image, channels = image[:3], 3
        if in_channels == 3:
            return image
    if channels == 1:
        rgb = image.expand(3, *image.shape[1:])
        if in_channels == 3:
            return rgb.clone()
        if in_channels == 4:
            return torch.cat([rgb, torch.full_like(image, 255)])
        return image.expand(in_channels, *image.shape[1:]).clone()
    if in_channels == 1:
        return F.rgb_to_grayscale(image)
    if in_channels == 4:
        return torch.cat([image, torch.full_like(image[:1], 255)])
    raise DataError(f"cannot convert a {channels}-channel image to data.in_channels={in_channels}")


def _short(err: BaseException) -> str:
    """The last line of a decoder's message, without C++ source locations."""
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return text.split(", ")[-1] if ".cpp:" in text else text
