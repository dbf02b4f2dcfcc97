"""Decoding uploads: every bad input gets its error before decoding and leaves no buffer;
conversions, EXIF orientation (all eight) and metadata removal are checked against Pillow."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from appliance.errors import UserFacingError
from appliance.media import decode as decode_module
from appliance.media.decode import ImageLimits, decode_image, sniff_format
from appliance.media.headers import read_header
from appliance.secure.buffers import REGISTRY
from tests import media_fixtures as fx

ROOT = Path(__file__).resolve().parent.parent


def owner() -> str:
    return f"job-{uuid.uuid4().hex}"


def decoded_rgb(data: bytes, who: str) -> np.ndarray:
    buffer, bgr = decode_image(memoryview(bytearray(data)), who)
    assert buffer.owner == who and bgr.dtype == np.uint8 and bgr.shape[2] == 3
    rgb = bgr[..., ::-1].copy()
    REGISTRY.release_owner(who)
    return rgb


def refused(data: bytes, code: str, limits: ImageLimits | None = None) -> UserFacingError:
    who = owner()
    with pytest.raises(UserFacingError) as info:
        decode_image(memoryview(bytearray(data)), who, limits)
    assert info.value.code == code, info.value
    assert 400 <= info.value.status < 500 and info.value.message and info.value.remedy
    assert REGISTRY.live(who) == [], "a refused upload left a secure buffer behind"
    return info.value


# -- format sniffing ---------------------------------------------------------------------------

def test_sniff_recognises_the_three_formats_from_their_bytes() -> None:
    rgb = fx.photo()
    assert sniff_format(fx.jpeg(rgb)) == "jpeg"
    assert sniff_format(fx.png(rgb)) == "png"
    assert sniff_format(fx.webp(rgb)) == "webp"


@pytest.mark.parametrize(("fmt", "name"), [("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF")])
def test_other_image_formats_are_named_and_refused(fmt: str, name: str) -> None:
    data = fx.pil_bytes(Image.fromarray(fx.photo()), fmt)
    error = refused(data, "unsupported_format")
    assert error.status == 415 and name in error.message


def test_radiance_hdr_is_refused_before_opencv_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode_module.cv2, "imdecode", _must_not_decode)
    refused(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 8 +X 8\n" + bytes(256),
            "unsupported_format")


@pytest.mark.parametrize("data", [b"", b"hello, this is not a photo" * 20, bytes(4096),
                                  b"%!PS-Adobe-3.0\n" + bytes(100)])
def test_not_an_image(data: bytes) -> None:
    assert refused(data, "not_an_image").status == 415


def _must_not_decode(*args: object, **kwargs: object) -> None:
    raise AssertionError("cv2.imdecode was called on an upload that should have been refused")


# -- limits and bombs: refused from the header, before any decoding ------------------------------

def test_too_many_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode_module.cv2, "imdecode", _must_not_decode)
    data = fx.jpeg()
    error = refused(data, "too_many_bytes", ImageLimits(max_bytes=len(data) - 1))
    assert error.status == 413


def test_too_many_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode_module.cv2, "imdecode", _must_not_decode)
    noisy = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    error = refused(fx.cv2_png(noisy), "too_many_pixels", ImageLimits(max_pixels=120 * 159))
    assert error.status == 413 and "160 x 120" in error.message
    refused(fx.cv2_png(noisy), "too_many_pixels", ImageLimits(max_side=159))


def test_a_50000_square_png_of_a_few_hundred_bytes_is_a_decompression_bomb(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode_module.cv2, "imdecode", _must_not_decode)
    bomb = fx.png_bomb()
    assert len(bomb) < 2000
    error = refused(bomb, "decompression_bomb")
    assert error.status == 413 and "50000 x 50000" in error.message


def test_a_jpeg_claiming_60000_square_is_a_decompression_bomb(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode_module.cv2, "imdecode", _must_not_decode)
    refused(fx.jpeg_with_sof(fx.jpeg(), size=(60000, 60000)), "decompression_bomb")


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
@pytest.mark.parametrize("keep", [0.3, 0.7, 0.98])
def test_truncated_files(fmt: str, keep: float) -> None:
    noisy = np.random.default_rng(5).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    data = {"jpeg": fx.jpeg(noisy), "png": fx.png(noisy),
            "webp": fx.webp(noisy, lossless=False)}[fmt]
    cut = data[: int(len(data) * keep)]
    refused(cut, "truncated_image")


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_truncated_inside_the_header(fmt: str) -> None:
    data = {"jpeg": fx.jpeg(), "png": fx.png(fx.photo()), "webp": fx.webp(fx.photo())}[fmt]
    with pytest.raises(UserFacingError) as info:
        decode_image(data[:20], owner())
    assert info.value.code in ("truncated_image", "not_an_image")


def test_a_png_with_damaged_compressed_data_is_refused_cleanly() -> None:
    data = bytearray(fx.png(np.random.default_rng(9).integers(0, 256, (40, 40, 3),
                                                             dtype=np.uint8)))
    start = data.find(b"IDAT") + 8
    data[start: start + 40] = bytes(range(40))
    refused(bytes(data), "not_an_image")


# -- modes: converted to 8-bit BGR, or refused ---------------------------------------------------

def test_twelve_bit_jpeg_is_an_unsupported_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode_module.cv2, "imdecode", _must_not_decode)
    error = refused(fx.jpeg_with_sof(fx.jpeg(), precision=12), "unsupported_mode")
    assert "12-bit" in error.message


def test_animated_webp_and_png_are_unsupported_modes() -> None:
    frames = [Image.fromarray(fx.photo(seed=s)) for s in (1, 2)]
    animated_webp = fx.pil_bytes(frames[0], "WEBP", save_all=True,
                                 append_images=frames[1:], lossless=True)
    animated_png = fx.pil_bytes(frames[0], "PNG", save_all=True, append_images=frames[1:])
    assert "animated" in refused(animated_webp, "unsupported_mode").message
    assert "animated" in refused(animated_png, "unsupported_mode").message


def test_sixteen_bit_png_colour_and_grey_become_8_bit_bgr() -> None:
    who = owner()
    rng = np.random.default_rng(11)
    deep = rng.integers(0, 65536, (30, 40, 3), dtype=np.uint16)
    assert read_header(fx.cv2_png(deep)).bit_depth == 16
    _, bgr = decode_image(fx.cv2_png(deep), who)
    expected = np.clip(np.rint(deep / 257.0), 0, 255).astype(np.uint8)
    assert np.abs(bgr.astype(int) - expected).max() <= 1
    grey = rng.integers(0, 65536, (30, 40), dtype=np.uint16)
    _, bgr = decode_image(fx.cv2_png(grey), who)
    assert bgr.shape == (30, 40, 3)
    assert np.abs(bgr[..., 1].astype(int) - np.rint(grey / 257.0)).max() <= 1
    assert (bgr[..., 0] == bgr[..., 2]).all()
    REGISTRY.release_owner(who)


def test_grayscale_jpeg_and_png_become_three_equal_channels() -> None:
    grey = fx.photo()[..., 1].copy()
    for data in (fx.pil_bytes(Image.fromarray(grey), "JPEG", quality=95), fx.png(grey)):
        rgb = decoded_rgb(data, owner())
        assert rgb.shape == (*grey.shape, 3)
        assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
        assert np.abs(rgb[..., 0].astype(int) - grey).mean() < 3


def test_cmyk_jpeg_becomes_bgr_matching_pillows_reading() -> None:
    data = fx.pil_bytes(Image.fromarray(fx.photo()).convert("CMYK"), "JPEG", quality=95)
    assert read_header(data).channels == 4
    rgb = decoded_rgb(data, owner())
    oracle = fx.pillow_upright_rgb(data)
    assert np.abs(rgb.astype(int) - oracle.astype(int)).mean() < 3


def _composited(rgba: np.ndarray) -> np.ndarray:
    colour, alpha = rgba[..., :3].astype(int), rgba[..., 3:4].astype(int)
    return ((colour * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def test_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((20, 600, 4), np.uint8)  # wider than one compositing band is tall
    rgba[..., :3] = fx.photo(20, 600)
    rgba[..., 3] = np.linspace(0, 255, 600).astype(np.uint8)[None, :]
    rgba[:5, :, 3] = 0
    for data in (fx.png(rgba, "RGBA"), fx.webp(rgba)):
        rgb = decoded_rgb(data, owner())
        assert (rgb[:5] == 255).all()  # fully transparent -> white
        assert np.array_equal(rgb, _composited(rgba))


def test_tall_alpha_image_is_composited_across_bands() -> None:
    rgba = np.full((700, 9, 4), 255, np.uint8)
    rgba[..., :3] = fx.photo(700, 9)
    rgba[300:, :, 3] = 0
    assert np.array_equal(decoded_rgb(fx.png(rgba, "RGBA"), owner()), _composited(rgba))


def test_grey_with_alpha_and_palette_with_transparency() -> None:
    la = np.zeros((16, 16, 2), np.uint8)
    la[..., 0] = 100
    la[..., 1] = 0
    la[8:, :, 1] = 255
    rgb = decoded_rgb(fx.png(la, "LA"), owner())
    assert (rgb[:8] == 255).all() and (rgb[8:] == 100).all()
    palette = Image.fromarray(fx.photo(16, 16)).convert("P", palette=Image.Palette.ADAPTIVE,
                                                        colors=8)
    palette.info["transparency"] = 0
    data = fx.pil_bytes(palette, "PNG", transparency=0)
    assert read_header(data).has_alpha
    rgb = decoded_rgb(data, owner())
    index = np.asarray(palette)
    assert (rgb[index == 0] == 255).all()


# -- orientation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_eight_exif_orientations_match_pillow(orientation: int) -> None:
    rgb = fx.photo(40, 64)
    lossless = {"png": fx.png(rgb, orientation=orientation),
                "webp": fx.webp(rgb, orientation=orientation)}
    for fmt, data in lossless.items():
        assert read_header(data).orientation == orientation, fmt
        ours = decoded_rgb(data, owner())
        assert np.array_equal(ours, fx.pillow_upright_rgb(data)), fmt
    data = fx.jpeg(rgb, orientation=orientation)
    assert read_header(data).orientation == orientation
    ours = decoded_rgb(data, owner())
    oracle = fx.pillow_upright_rgb(data)
    assert ours.shape == oracle.shape == ((40, 64, 3) if orientation < 5 else (64, 40, 3))
    assert np.abs(ours.astype(int) - oracle.astype(int)).mean() < 2
    red_corner = ours[:4, :4].mean(axis=(0, 1)) if orientation == 1 else None
    if red_corner is not None:
        assert red_corner[0] > 200 and red_corner[1] < 60


def test_orientation_six_puts_the_top_left_corner_top_right() -> None:
    rgb = fx.photo(40, 64)  # red block in the stored top-left corner
    ours = decoded_rgb(fx.png(rgb, orientation=6), owner())
    assert ours.shape == (64, 40, 3)
    assert ours[:5, -5:, 0].mean() > 200 and ours[:5, -5:, 1].mean() < 60


# -- success leaves exactly the decoded buffer; the library's array is wiped ---------------------

def test_success_leaves_one_buffer_and_wipes_the_decoders_array(
        monkeypatch: pytest.MonkeyPatch) -> None:
    returned: list[np.ndarray] = []
    real = cv2.imdecode

    def spy(*args: object) -> np.ndarray:
        result = real(*args)
        returned.append(result)
        return result

    monkeypatch.setattr(decode_module.cv2, "imdecode", spy)
    who = owner()
    buffer, bgr = decode_image(memoryview(bytearray(fx.jpeg(orientation=6))), who)
    assert REGISTRY.live(who) == [buffer] and buffer.label == "decoded"
    assert bgr.any() and len(returned) == 1 and not returned[0].any()
    REGISTRY.release_owner(who)


def test_opencv_temp_file_fallback_cannot_write() -> None:
    """.hdr needs OpenCV's temp-file fallback; with the package imported it must fail."""
    make_hdr = ("import cv2, numpy as np, sys; ok, b = cv2.imencode('.hdr', "
                "np.full((8, 8, 3), 0.5, np.float32)); sys.stdout.buffer.write(b.tobytes())")
    hdr = subprocess.run([sys.executable, "-c", make_hdr], capture_output=True, check=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    assert hdr.startswith(b"#?")
    probe = (
        "import os, sys, appliance, cv2, numpy as np\n"
        "assert os.environ['OPENCV_TEMP_PATH'] == appliance.OPENCV_NO_TEMP_PATH\n"
        "data = np.frombuffer(sys.stdin.buffer.read(), np.uint8)\n"
        "try:\n    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)\n"
        "except cv2.error:\n    decoded = None\n"
        "try:\n    ok, _ = cv2.imencode('.hdr', np.full((8, 8, 3), 0.5, np.float32))\n"
        "except cv2.error:\n    ok = False\n"
        "print(decoded is None, ok, os.path.exists(appliance.OPENCV_NO_TEMP_PATH))\n")
    result = subprocess.run([sys.executable, "-c", probe], input=hdr, capture_output=True,
                            cwd=ROOT, env={"PYTHONPATH": str(ROOT), "OPENCV_TEMP_PATH": "/tmp"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"True", b"False", b"False"]
