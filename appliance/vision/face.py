"""A face found in a guest's photo: the one type detection, the gates and the effects share.

Why its own module: the quality gates, the pipeline and every effect read faces; keeping the type
apart from the code that makes them lets each of those depend on it without depending on each
other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear_tragion",
                  "left_ear_tragion")


@dataclass
class Face:
    """One face in image pixels.

    box (x0, y0, x1, y1); score from the detector; keypoints (6, 2) in MediaPipe's order
    (``KEYPOINT_NAMES``: the person's right eye first, which is on the image's left); mesh
    (468, 3) with z in pixels (negative towards the camera) or None, a view of a secure buffer
    of the job (the geometry identifies a face as well as its pixels do); presence is the mesh
    model's face probability (None without a mesh).
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: npt.NDArray[np.float32]
    mesh: npt.NDArray[np.float32] | None = None
    presence: float | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    def to_json(self, *, mesh: bool = False) -> dict[str, Any]:
        """The README's ``ephemera detect --json`` schema for one face."""
        body: dict[str, Any] = {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "keypoints": {name: [round(float(x), 2), round(float(y), 2)]
                          for name, (x, y) in zip(KEYPOINT_NAMES, self.keypoints,
                                                  strict=True)},
        }
        if self.presence is not None:
            body["presence"] = round(float(self.presence), 4)
        if mesh and self.mesh is not None:
            body["mesh"] = [[round(float(v), 2) for v in point] for point in self.mesh]
        return body
