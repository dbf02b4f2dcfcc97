"""P2 after a crash: kill -9 in the middle of a job; what is left (photos kept as pixels, a
result) is ciphertext, nothing of the earlier run can be read after a restart, and the start-up
sweep removes it."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import service as svc
from tests.helpers.images import astronaut_bgr, encode, twelve_megapixels

pytestmark = [pytest.mark.slow, pytest.mark.needs_models]


def entropy_bits_per_byte(data: bytes) -> float:
    counts = Counter(data)
    return -sum(n / len(data) * math.log2(n / len(data)) for n in counts.values())


def test_kill_9_leaves_only_ciphertext_and_the_restart_sweeps_it(tmp_path: Path) -> None:
    service = svc.start(tmp_path)
    store = service.store
    try:
        photo, job, token = service.photo_job(encode(astronaut_bgr(), ".jpg"), "image/jpeg")
        status = service.wait_for_job(job, token)
        assert status["state"] == "done"
        output_url = status["outputs"][0]["url"]
        result = service.get(output_url, token).body
        grant = service.request("POST", f"/api/jobs/{job}/download-token",
                                headers={"Authorization": f"Bearer {token}"}).json()
        # A second, big job is queued or running when the whole service is killed.
        _big, second, _ = service.photo_job(encode(twelve_megapixels(), ".jpg"), "image/jpeg",
                                            token=token)
        assert service.get(f"/api/jobs/{second}", token).status == 200
    finally:
        svc.stop(service, hard=True)

    restarted = None
    try:
        leftovers = [p for p in store.rglob("*") if p.is_file()]
        assert len(leftovers) >= 3, "the photos and the done job's result should still be " \
            "in tmpfs after kill -9"
        pixels = astronaut_bgr()
        rows = [pixels[r].tobytes()[:96] for r in range(0, 512, 32)]  # the photo's raw rows
        windows = [result[i:i + 32] for i in range(0, len(result) - 32, len(result) // 16)]
        for path in leftovers:
            blob = path.read_bytes()
            # (JFIF is looked for where a JPEG has it: 4 bytes recur by chance in 36 MB.)
            assert b"\xff\xd8\xff" not in blob[:64] and b"JFIF" not in blob[:4096]
            assert entropy_bits_per_byte(blob) > 7.9
            assert not any(w in blob for w in windows), "plaintext result found in the store"
            assert not any(r in blob for r in rows), "plaintext pixels found in the store"

        restarted = svc.start(tmp_path, store=store)
        assert [p for p in store.rglob("*") if p.is_file()] == []
        assert "leftover" in restarted.output()
        status = restarted.get(f"/api/jobs/{job}", token)
        assert status.status == 403 and status.json()["error"] == "token_invalid"
        assert restarted.get(grant["download_url"]).status == 403
        assert restarted.get(output_url, token).status == 403
        assert restarted.get(f"/api/photos/{photo}", token).status == 403
    finally:
        if restarted is not None:
            svc.stop(restarted)
        svc.remove_store(store)
