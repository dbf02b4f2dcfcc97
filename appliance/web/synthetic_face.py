"""A portrait drawn in code for the operator's self-test: no photo of anyone is kept or shipped.

Why drawn: the self-test runs a whole job through every effect, which needs a photo with faces
that pass the booth's gates (a face, its mesh, eyes open), and the booth keeps no photo of
anyone. The drawing is a shaded skin oval with hair, brows, eyes with whites, irises, pupils
and highlights, a shaded nose and lips, on a soft background.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

SKIN = (140, 170, 215)  # BGR


def _face(canvas: npt.NDArray[np.uint8], cx: int, cy: int, size: int) -> None:
    """One frontal face centred at (cx, cy), ``size`` pixels from chin to hairline."""
    h = size // 2
    w = int(h * 0.78)
    # hair behind, then neck and shoulders
    cv2.ellipse(canvas, (cx, cy - h // 6), (int(w * 1.12), int(h * 1.1)), 0, 180, 360,
                (40, 50, 70), -1)
    cv2.rectangle(canvas, (cx - w // 3, cy + h // 2), (cx + w // 3, cy + int(h * 1.4)),
                  tuple(int(c * 0.9) for c in SKIN), -1)
    cv2.ellipse(canvas, (cx, cy + int(h * 1.9)), (int(w * 2.0), int(h * 0.8)), 0, 180, 360,
                (120, 80, 50), -1)
    # the face: a skin oval shaded darker towards its edge
    mask = np.zeros(canvas.shape[:2], np.float32)
    cv2.ellipse(mask, (cx, cy), (w, h), 0, 0, 360, 1.0, -1)
    yy, xx = np.mgrid[0:canvas.shape[0], 0:canvas.shape[1]]
    r = np.sqrt(((xx - cx) / w) ** 2 + ((yy - cy) / h) ** 2)
    shade = np.clip(1.08 - 0.35 * r ** 2, 0.6, 1.1)
    skin = np.array(SKIN, np.float32)[None, None, :] * shade[..., None]
    inside = mask > 0
    canvas[inside] = np.clip(skin[inside], 0, 255).astype(np.uint8)
    # hairline fringe
    cv2.ellipse(canvas, (cx, cy - int(h * 0.78)), (int(w * 0.95), int(h * 0.3)), 0, 180, 360,
                (40, 50, 70), -1)
    eye_y = cy - int(h * 0.12)
    for side in (-1, 1):
        ex = cx + side * int(w * 0.4)
        ew, eh = int(w * 0.24), int(h * 0.085)
        cv2.ellipse(canvas, (ex, eye_y - int(h * 0.13)), (int(ew * 1.1), int(eh * 0.7)), 0,
                    200, 340, (35, 45, 60), max(2, size // 45))  # brow
        cv2.ellipse(canvas, (ex, eye_y + eh // 3), (int(ew * 1.15), int(eh * 1.5)), 0, 0, 360,
                    tuple(int(c * 0.82) for c in SKIN), -1)  # socket shadow
        cv2.ellipse(canvas, (ex, eye_y), (ew, eh), 0, 0, 360, (235, 240, 245), -1)  # white
        cv2.circle(canvas, (ex, eye_y), int(eh * 0.95), (70, 95, 60), -1)  # iris
        cv2.circle(canvas, (ex, eye_y), int(eh * 0.45), (15, 15, 15), -1)  # pupil
        cv2.circle(canvas, (ex + eh // 3, eye_y - eh // 3), max(1, eh // 5), (255, 255, 255), -1)
        cv2.ellipse(canvas, (ex, eye_y), (ew, eh), 0, 180, 360, (40, 50, 70), max(1, size // 90))
    # nose: a shaded ridge and nostrils
    nose_top, nose_tip = eye_y + int(h * 0.05), cy + int(h * 0.22)
    for i in range(nose_top, nose_tip):
        cv2.line(canvas, (cx + int(w * 0.06), i), (cx + int(w * 0.1), i),
                 tuple(int(c * 0.85) for c in SKIN), 1)
    cv2.ellipse(canvas, (cx, nose_tip), (int(w * 0.17), int(h * 0.06)), 0, 0, 180,
                tuple(int(c * 0.7) for c in SKIN), -1)
    for side in (-1, 1):
        cv2.circle(canvas, (cx + side * int(w * 0.08), nose_tip + int(h * 0.02)),
                   max(2, size // 80), (60, 70, 110), -1)
    # lips
    mouth_y = cy + int(h * 0.45)
    cv2.ellipse(canvas, (cx, mouth_y), (int(w * 0.33), int(h * 0.07)), 0, 180, 360,
                (80, 80, 170), -1)
    cv2.ellipse(canvas, (cx, mouth_y), (int(w * 0.3), int(h * 0.09)), 0, 0, 180,
                (95, 95, 185), -1)
    cv2.line(canvas, (cx - int(w * 0.33), mouth_y), (cx + int(w * 0.33), mouth_y),
             (50, 50, 110), max(1, size // 120))


def portrait(faces: int = 1, width: int = 960, height: int = 720) -> npt.NDArray[np.uint8]:
    """A BGR photo of ``faces`` (1 or 2) drawn faces side by side, softened like a lens would."""
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = (200, 195, 185)
    ramp = np.linspace(0.85, 1.1, height, dtype=np.float32)[:, None, None]
    canvas[:] = np.clip(canvas * ramp, 0, 255).astype(np.uint8)
    size = int(height * (0.55 if faces == 1 else 0.45))
    centres = [width // 2] if faces == 1 else [int(width * 0.3), int(width * 0.7)]
    for cx in centres:
        _face(canvas, cx, int(height * 0.45), size)
    blurred = cv2.GaussianBlur(canvas, (0, 0), max(1.0, height / 500))
    return np.ascontiguousarray(blurred)
