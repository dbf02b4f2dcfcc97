"""One photo through decode, encode and the RAM store, then OpenCV's temp-file fallbacks.

Run under strace by tests/test_secure_no_disk_writes.py:
``python decode_encode_store.py STORE_DIR HDR_HEX``. Prints START once the imports are done
(the trace is read from there on) and END when everything succeeded.
"""

from __future__ import annotations

import contextlib
import io
import sys

import cv2
import numpy as np
from PIL import Image

from appliance.media.decode import decode_image
from appliance.media.encode import encode_image
from appliance.secure.buffers import REGISTRY
from appliance.secure.crypto import JobKey
from appliance.secure.store import RamStore

OWNER = "job-1"


def jpeg_with_orientation() -> bytes:
    """A 160 x 120 gradient JPEG with EXIF orientation 6, built in memory."""
    rgb = (np.indices((120, 160)).sum(axis=0) % 256).astype(np.uint8)
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.dstack([rgb, rgb[::-1], rgb[:, ::-1]])).save(out, "JPEG", exif=exif)
    return out.getvalue()


def main(store_dir: str, hdr_hex: str) -> None:
    data = jpeg_with_orientation()
    upload = REGISTRY.allocate(len(data), owner=OWNER)
    upload.view()[:] = np.frombuffer(data, np.uint8)
    print("START", flush=True)
    _, bgr = decode_image(upload.memoryview(), OWNER)
    _, encoded = encode_image(bgr, "jpeg", OWNER)
    store = RamStore(store_dir, 1 << 24, 4)
    key = JobKey.generate(OWNER)
    store.put(OWNER, "result", encoded, key)
    back = store.get(OWNER, "result", key)
    assert bytes(back.view()) == bytes(encoded)
    store.delete_job(OWNER)
    # Radiance .hdr goes through a temp file in OpenCV: the impossible temp path must stop it.
    with contextlib.suppress(cv2.error):
        cv2.imdecode(np.frombuffer(bytes.fromhex(hdr_hex), np.uint8), cv2.IMREAD_UNCHANGED)
    with contextlib.suppress(cv2.error):
        cv2.imencode(".hdr", np.full((8, 8, 3), 0.5, np.float32))
    REGISTRY.release_all()
    print("END", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
