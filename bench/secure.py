"""Cost of the privacy mechanisms, as ratios against a plain memory copy of the same size.

Run: PYTHONPATH=. python bench/secure.py
Prints a Markdown table for BENCHMARKS.md. Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import platform
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from appliance.config import load_config
from appliance.media.decode import decode_image
from appliance.media.headers import read_header
from appliance.secure.buffers import REGISTRY, use_memfd_secret
from appliance.secure.crypto import JobKey, associated_data
from appliance.secure.store import RamStore

MiB = 1 << 20


def median_ms(fn: Callable[[], object], repeat: int = 7) -> float:
    fn()  # warm up (page faults, caches)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def copy_ms(nbytes: int) -> float:
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    return median_ms(lambda: np.copyto(dst, src))


def main() -> None:
    use_memfd_secret(load_config().secure.memfd_secret)
    owner = f"bench-{uuid.uuid4().hex}"
    rows: list[tuple[str, float, float]] = []

    size = 64 * MiB
    buffer = REGISTRY.allocate(size, owner=owner)
    buffer.view()[:] = 1
    rows.append((f"wipe a {size // MiB} MiB secure buffer ({buffer.kind})",
                 median_ms(buffer.wipe), copy_ms(size)))

    size = 8 * MiB
    key = JobKey.generate(owner)
    plain = REGISTRY.allocate(size, owner=owner)
    plain.view()[:] = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8)
    aad = associated_data(owner, "result")
    blob = key.encrypt(plain.memoryview(), aad)
    rows.append((f"AES-256-GCM encrypt {size // MiB} MiB",
                 median_ms(lambda: key.encrypt(plain.memoryview(), aad)), copy_ms(size)))
    rows.append((f"AES-256-GCM decrypt {size // MiB} MiB into a secure buffer",
                 median_ms(lambda: key.decrypt(blob, aad, owner).release()), copy_ms(size)))

    path = Path("/dev/shm") / f"ephemera-bench-{uuid.uuid4().hex}"
    store = RamStore(path, 256 * MiB, 8)

    def put_and_delete() -> None:
        store.put(owner, "result", plain.memoryview(), key)
        store.delete_job(owner)

    rows.append((f"store put + overwrite + unlink, {size // MiB} MiB",
                 median_ms(put_and_delete), copy_ms(size)))
    shutil.rmtree(path, ignore_errors=True)

    rng = np.random.default_rng(1)
    photo = cv2.resize(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), (4000, 3000))
    _, encoded = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    data = bytearray(encoded.tobytes())
    decoded_bytes = 4000 * 3000 * 3
    rows.append(("header check of a 12 MP JPEG (before decoding)",
                 median_ms(lambda: read_header(data)), copy_ms(decoded_bytes)))
    plain_decode = median_ms(lambda: cv2.imdecode(np.frombuffer(data, np.uint8),
                                                   cv2.IMREAD_COLOR), repeat=3)
    rows.append(("decode_image of the same 12 MP JPEG (reference: cv2.imdecode alone)",
                 median_ms(lambda: decode_image(data, owner)[0].release(), repeat=3),
                 plain_decode))
    REGISTRY.release_owner(owner)

    print(f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"Python {platform.python_version()}, OpenCV {cv2.__version__}\n")
    print("| operation | median ms | reference ms (plain copy of the same bytes unless named) "
          "| ratio |")
    print("| --- | ---: | ---: | ---: |")
    for name, ms, ref in rows:
        print(f"| {name} | {ms:.2f} | {ref:.2f} | {ms / ref:.3f} |")


if __name__ == "__main__":
    main()
