"""A result as a 10x15 cm (4x6 in) print at 300 dpi, with the operator's optional overlay.

The photo fills the card (cropped to the card's shape, centred), turned to portrait or
landscape to match the picture; a PNG with transparency from the configuration (a frame, a
logo) is blended on top. The JPEG carries its 300 dpi in the JFIF header, and the IPP job says
the same, so the printer neither scales nor guesses.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from appliance.media.encode import encode_image
from appliance.secure.buffers import REGISTRY, SecureBuffer

DPI = 300
CARD_INCHES = (4, 6)  # 10x15 cm photo paper ("4R", PWG na_index-4x6)
CARD_PIXELS = (CARD_INCHES[0] * DPI, CARD_INCHES[1] * DPI)  # 1200 x 1800
PRINT_QUALITY = 92


def load_overlay(path: str) -> np.ndarray | None:
    """The operator's overlay as BGRA, or None; refuses anything but a PNG with alpha."""
    if not path:
        return None
    image = cv2.imread(str(Path(path)), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"printer.frame_overlay = {path!r} is not a PNG with transparency")
    return image


def card_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the card in pixels, portrait or landscape like the photo."""
    short, long = CARD_PIXELS
    return (long, short) if width > height else (short, long)


def fill_card(bgr: np.ndarray, out: np.ndarray) -> None:
    """Scale and centre-crop ``bgr`` so it covers ``out`` entirely."""
    height, width = bgr.shape[:2]
    out_h, out_w = out.shape[:2]
    scale = max(out_w / width, out_h / height)
    crop_w, crop_h = min(width, round(out_w / scale)), min(height, round(out_h / scale))
    x0, y0 = (width - crop_w) // 2, (height - crop_h) // 2
    cv2.resize(bgr[y0:y0 + crop_h, x0:x0 + crop_w], (out_w, out_h), dst=out,
               interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def blend_overlay(card: np.ndarray, overlay: np.ndarray, owner: str) -> None:
    """Alpha-blend the overlay (resized to the card) onto it in place."""
    out_h, out_w = card.shape[:2]
    fitted = cv2.resize(overlay, (out_w, out_h), interpolation=cv2.INTER_AREA)
    alpha = fitted[:, :, 3:4].astype(np.float32) / 255.0
    buffer, mixed = REGISTRY.array(card.shape, np.float32, owner=owner, label="print-blend")
    try:
        np.multiply(card, 1.0 - alpha, out=mixed)
        mixed += fitted[:, :, :3] * alpha
        np.clip(mixed, 0, 255, out=mixed)
        np.copyto(card, mixed, casting="unsafe")  # no heap copy of the pixels
    finally:
        buffer.release()


def set_jfif_density(jpeg: memoryview, dpi: int) -> None:
    """Write the resolution into the JFIF APP0 header OpenCV writes (units=1: dots/inch)."""
    if bytes(jpeg[0:4]) != b"\xff\xd8\xff\xe0" or bytes(jpeg[6:11]) != b"JFIF\x00":
        raise ValueError("the encoder wrote no JFIF header")
    jpeg[13] = 1
    jpeg[14:16] = dpi.to_bytes(2, "big")
    jpeg[16:18] = dpi.to_bytes(2, "big")


def render_print(bgr: np.ndarray, owner: str, overlay: np.ndarray | None = None
                 ) -> SecureBuffer:
    """The print as a 300 dpi JPEG in a secure buffer of ``owner``."""
    width, height = card_size(bgr.shape[1], bgr.shape[0])
    buffer, card = REGISTRY.array((height, width, 3), np.uint8, owner=owner, label="print")
    try:
        fill_card(bgr, card)
        if overlay is not None:
            blend_overlay(card, overlay, owner)
        jpeg, view = encode_image(card, "jpeg", owner, PRINT_QUALITY)
    finally:
        buffer.release()
    with view:
        set_jfif_density(view, DPI)
    return jpeg
