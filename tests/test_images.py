"""The one image decoder: formats decided by content, one rule per mode, EXIF orientation, refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from cifar_resnets.data.images import check_image, decode_image, read_image, recognised_format
from cifar_resnets.errors import InputError


def encode(image: Image.Image, fmt: str, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def pattern(width: int = 24, height: int = 16) -> Image.Image:
    """An asymmetric RGB picture, so that a wrong rotation or flip shows."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + 2 * y) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels)


def test_format_is_decided_by_content_not_by_name(tmp_path) -> None:
    gif = tmp_path / "really_a_gif.png"
    gif.write_bytes(encode(pattern().convert("P"), "GIF"))
    decoded = read_image(gif)
    assert decoded.mode == "RGB" and decoded.size == (24, 16)  # a GIF, read as one
    tiff = tmp_path / "scan.png"
    tiff.write_bytes(encode(pattern(), "TIFF"))
    with pytest.raises(InputError, match="a TIFF image, not one of the accepted formats") as err:
        read_image(tiff)
    assert "PNG, JPEG, WebP, BMP, GIF" in err.value.reason
    text = tmp_path / "photo.jpg"
    text.write_text("model: resnet20\n")
    with pytest.raises(InputError, match="is not an image"):
        read_image(text)
    assert recognised_format(b"GIF89a" + b"\0" * 10) == "GIF" and recognised_format(b"hello") is None


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(io.BytesIO(buffer.getvalue())) as check:
        assert check.n_frames == 2
    assert np.asarray(decode_image(buffer.getvalue()))[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize(
    "orientation, undo",
    [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270), (3, Image.Transpose.ROTATE_180)],
)
def test_exif_orientation_is_applied(orientation: int, undo: Image.Transpose) -> None:
    upright = pattern()
    stored = upright.transpose(undo)  # the pixels as a sideways camera stores them
    exif = Image.Exif()
    exif[0x0112] = orientation
    png = decode_image(encode(stored, "PNG", exif=exif.tobytes()))
    assert np.array_equal(np.asarray(png), np.asarray(upright))
    jpeg = decode_image(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert jpeg.size == upright.size


def test_transparency_of_every_kind_goes_onto_white() -> None:
    clear = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    half = Image.new("RGBA", (4, 4), (0, 0, 0, 128))
    assert np.asarray(decode_image(encode(clear, "PNG"))).min() == 255
    assert np.asarray(decode_image(encode(half, "PNG")))[0, 0].tolist() == [127, 127, 127]
    assert np.asarray(decode_image(encode(clear.convert("LA"), "PNG"))).min() == 255
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    palette.info["transparency"] = 0
    assert np.asarray(decode_image(encode(palette, "PNG", transparency=0))).min() == 255
    assert np.asarray(decode_image(encode(palette, "GIF", transparency=0))).min() == 255
    keyed = Image.new("RGB", (4, 4), (10, 20, 30))  # a PNG colour key (tRNS chunk)
    assert np.asarray(decode_image(encode(keyed, "PNG", transparency=(10, 20, 30)))).min() == 255


def test_16_bit_cmyk_grey_and_palette_become_rgb() -> None:
    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)
    sixteen = Image.fromarray(ramp)
    assert sixteen.mode == "I;16"
    decoded = np.asarray(decode_image(encode(sixteen, "PNG")))
    assert np.array_equal(decoded[..., 0], np.arange(256).reshape(16, 16))  # scaled by 1/257, not clipped
    for image, fmt in ((pattern().convert("CMYK"), "JPEG"), (pattern().convert("L"), "PNG"),
                       (pattern().convert("P"), "PNG"), (pattern().convert("1"), "BMP"),
                       (pattern(), "WEBP"), (pattern(), "BMP")):  # fmt: skip
        out = decode_image(encode(image, fmt), fmt)
        assert out.mode == "RGB" and out.size == (24, 16), fmt


def test_bad_files_each_give_their_reason(tmp_path, monkeypatch) -> None:
    with pytest.raises(InputError, match="is empty"):
        decode_image(b"", "empty.png")
    whole = encode(pattern(64, 64), "PNG")
    with pytest.raises(InputError, match="truncated or corrupt") as err:
        decode_image(whole[: len(whole) // 2], "cut.png")
    assert str(err.value).startswith("cut.png is truncated or corrupt") and "\n" not in str(err.value)
    with pytest.raises(InputError, match="truncated or corrupt"):
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "header.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 px: more than twice the limit
    with pytest.raises(InputError, match="too large: a possible decompression bomb .4,096 pixels"):
        decode_image(whole, "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # between 1x and 2x: Pillow only warns
    with pytest.raises(InputError, match="too large"):
        decode_image(whole, "big.png")
    path = tmp_path / "big.png"
    path.write_bytes(whole)
    with pytest.raises(InputError, match="too large"):
        check_image(path)  # the header check refuses it too, without decoding
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    check_image(path)
    with pytest.raises(InputError, match="unreadable"):
        read_image(tmp_path / "missing.png")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(InputError, match="LOAD_TRUNCATED_IMAGES"):
        decode_image(whole)
