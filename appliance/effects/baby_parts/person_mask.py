"""The person mask the baby needs: the segmentation model's own 256 x 256 output.

Why not the refined full-size mask: the portrait only uses the mask feathered (hair outline
inside a round skull, the neck under a blanket), so the guided upsampling to the photo's size
would cost a pass over 12 megapixels for detail that is blurred away.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from appliance.secure.buffers import REGISTRY
from appliance.vision.pipeline import FacePipeline
from appliance.vision.segment import MODEL
from appliance.vision.tensors import input_size


def low_res_mask(pipeline: FacePipeline, bgr: npt.NDArray[np.uint8],
                 owner: str) -> npt.NDArray[np.float32]:
    """Person probability at the model's input size, in a secure buffer of ``owner``."""
    spec = pipeline.models.get(MODEL).inputs[0]
    _buffer, mask = REGISTRY.array(input_size(spec), np.float32, owner=owner,
                                   label="baby:person-mask")
    pipeline.segmenter.low_res_mask(bgr, owner, mask)
    return mask
