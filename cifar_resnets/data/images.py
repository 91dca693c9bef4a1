"""The one image decoder: training, cifar-eval, cifar-predict and the app read every picture alike.

Files are untrusted, so a picture is accepted by its content (Pillow's plugins read its first bytes), not
its name: a GIF renamed ``.png`` is a GIF. Anything refused ends in one ``InputError`` with a
``reason``. Every accepted picture becomes 8-bit RGB by one rule per mode, and a picture beyond Pillow's
decompression-bomb limit is refused before decoding (Pillow itself only warns below twice the limit).
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from cifar_resnets.errors import InputError

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
ACCEPTED_TEXT = "PNG, JPEG, WebP, BMP, GIF"
# The usual names of those formats, for file pickers only: acceptance is decided by content.
ACCEPTED_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "gif")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_WIDE_INTEGER_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")
_PREFIX_BYTES = 16  # what Pillow's plugins look at to recognise a format
WHOLE_FILE = "copy or download the whole file again"  # words for a web page and a shell alike


def decode_error(name: str, reason: str, hint: str) -> InputError:
    """A file that cannot be used as an image: one line naming the file, and ``reason`` on its own."""
    return InputError(f"{name} is {reason}; {hint}", reason)


def pixel_limit_text() -> str:
    limit = Image.MAX_IMAGE_PIXELS
    return f"{limit:,} pixels" if limit else "no limit"


def recognised_format(prefix: bytes) -> str | None:
    """The Pillow format whose signature ``prefix`` (a file's first bytes) carries, else None.

    Asks each registered plugin's own signature check, in Pillow's order, as ``Image.open`` does; unlike
    ``Image.open`` it parses no header, so refused formats are named without being read any further.
    """
    Image.init()
    for fmt in Image.ID:
        accept = Image.OPEN[fmt][1]
        try:
            result = accept is not None and accept(prefix[:_PREFIX_BYTES])
        except (SyntaxError, IndexError, TypeError, struct.error):  # what Image.open ignores, too
            continue
        if result and not isinstance(result, str):  # a str is a plugin's warning, not a match
            return fmt
    return None


def _unaccepted(name: str, prefix: bytes) -> InputError:
    fmt = recognised_format(prefix)
    if fmt in ACCEPTED_FORMATS:  # the signature is right but Pillow could not parse the header
        return decode_error(name, f"truncated or corrupt (a damaged {fmt} header)", WHOLE_FILE)
    if fmt is not None:
        return decode_error(
            name, f"a {fmt} image, not one of the accepted formats ({ACCEPTED_TEXT})", "convert it to PNG"
        )
    return decode_error(
        name, "not an image (its content matches no picture format)", f"accepted formats: {ACCEPTED_TEXT}"
    )


def _too_large(name: str, err: Exception) -> InputError:
    found = re.search(r"\((\d+) pixels\)", str(err))
    size = f"{int(found.group(1)):,} pixels, " if found else ""
    return decode_error(
        name,
        f"too large: a possible decompression bomb ({size}more than the limit of {pixel_limit_text()})",
        "shrink it and try again",
    )


def _corrupt(name: str, err: Exception) -> InputError:
    """Pillow's wording ("image file is truncated (1 bytes not processed)") counts bytes of its own
    buffers, not what is missing; the line says what a person can tell of the file."""
    ends_early = "truncated" in str(err).lower() or isinstance(err, EOFError)
    detail = "the file ends before the picture does" if ends_early else "its picture data is damaged"
    return decode_error(name, f"truncated or corrupt ({detail})", WHOLE_FILE)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB (EXIF already applied).

    Transparency of any kind (alpha, a palette or colour key with transparency) is composited onto white;
    16- and 32-bit integer greyscale (``I;16``, ``I``) is read as 0..65535; CMYK, greyscale and palette
    images go through Pillow's conversion (embedded ICC profiles are not applied anywhere).
    """
    if image.mode in _WIDE_INTEGER_MODES:
        values = np.asarray(image, dtype=np.float64) / 257.0  # 0..65535 onto 0..255
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _decode(source: Path | bytes, name: str, pixels: bool = True) -> Image.Image | None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # A global Pillow switch (set by some libraries) that silently pads cut files with grey.
        raise decode_error(
            name, "not checked: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on", "turn it off to read images"
        )
    if isinstance(source, bytes):
        fp, prefix = io.BytesIO(source), source[:_PREFIX_BYTES]
    else:
        fp = source
        with open(source, "rb") as f:
            prefix = f.read(_PREFIX_BYTES)
    if not prefix:
        raise decode_error(name, "empty (0 bytes)", WHOLE_FILE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp, formats=ACCEPTED_FORMATS) as image:
                if not pixels:
                    image.verify()  # header and, for PNG, chunk checksums; decodes nothing
                    return None
                image.load()  # the first frame of an animation
                return to_rgb(ImageOps.exif_transpose(image))
    except UnidentifiedImageError:
        raise _unaccepted(name, prefix) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise _too_large(name, err) from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        struct.error,
    ) as err:  # Pillow's ways of saying "bad data"
        raise _corrupt(name, err) from None


def decode_image(data: bytes, name: str = "image") -> Image.Image:
    """The bytes of an image file (an upload) -> RGB Pillow image, or ``InputError``."""
    return _decode(bytes(data), name)


def read_image(path: str | Path, name: str | None = None) -> Image.Image:
    """An image file -> RGB Pillow image, or ``InputError`` (also for a file that cannot be read)."""
    path = Path(path)
    try:
        return _decode(path, name or str(path))
    except OSError as err:  # the file itself: gone, a folder, no permission
        raise decode_error(
            name or str(path), f"unreadable ({err.strerror or err})", "check the file"
        ) from None


def check_image(path: str | Path) -> None:
    """Raise ``InputError`` unless ``path`` holds an accepted image; reads its header only.

    For scanning a dataset cheaply: pixel data damaged past the header is only found by ``read_image``.
    """
    path = Path(path)
    try:
        _decode(path, str(path), pixels=False)
    except OSError as err:
        raise decode_error(str(path), f"unreadable ({err.strerror or err})", "check the file") from None
