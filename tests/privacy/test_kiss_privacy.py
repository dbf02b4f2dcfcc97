"""The kiss video through the real service (gunicorn, the malloc environment, ONNX Runtime):

* under strace, making and serving the video (PyAV's muxer, libx264, the in-memory faststart
  rewrite, the frame graph) writes no file anywhere outside the RAM store and reaches for no
  address off the box;
* a canary planted in one of the two photos is nowhere in the live process once the job is
  done, nor once the photos and the job are deleted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import service as svc
from tests.helpers.images import astronaut_bgr, encode, png_chunk_span, with_canary
from tests.helpers.memscan import Canary, encoded_patterns, process_tree, scan
from tests.helpers.strace_log import STRACE_ARGS, assert_service_kept_to_the_store

pytestmark = [pytest.mark.slow, pytest.mark.needs_models]



def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start_kiss(service: svc.Service, first: bytes, second: bytes) -> tuple[list[str], str, str]:
    """Two photos and a 3-second kiss started on them: (photo ids, job id, session token)."""
    one = service.upload(first, "image/png", query="effect=kiss")
    assert one.status == 201, one.body
    token = one.json()["session_token"]
    two = service.upload(second, "image/png", token=token, query="effect=kiss")
    assert two.status == 201, two.body
    photos = [one.json()["photo_id"], two.json()["photo_id"]]
    job = service.start_job(token, photos, "kiss", {"duration": 3})
    assert job.status == 202, job.body
    return photos, job.json()["job_id"], token


def kiss(service: svc.Service, first: bytes, second: bytes) -> tuple[list[str], str, str]:
    """Two photos and a finished 3-second kiss on them: (photo ids, job id, session token)."""
    photos, job, token = start_kiss(service, first, second)
    status = service.wait_for_job(job, token, timeout=600)
    assert status["state"] == "done", status
    return photos, job, token


def mirrored() -> bytes:
    return encode(np.ascontiguousarray(astronaut_bgr()[:, ::-1]), ".png")


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed "
                    "(make system-deps installs it)")
def test_making_the_video_writes_nothing_outside_the_ram_store(tmp_path: Path) -> None:
    log = tmp_path / "strace.log"
    service = svc.start(tmp_path, wrapper=("strace", *STRACE_ARGS, "-o", str(log)),
                        ready_timeout=180)
    try:
        photos, job, token = kiss(service, encode(astronaut_bgr(), ".png"), mirrored())
        video = service.get(f"/api/jobs/{job}/outputs/kiss.mp4", token)
        assert video.status == 200 and video.body[4:8] == b"ftyp"
        part = service.get(f"/api/jobs/{job}/outputs/kiss.mp4", token,
                           headers={"Range": "bytes=0-1023"})
        assert part.status == 206 and part.body == video.body[:1024]
        assert service.get(f"/api/jobs/{job}/outputs/poster.jpg", token).status == 200
        assert service.delete(f"/api/jobs/{job}", token).status == 200
        for photo in photos:
            assert service.delete(f"/api/photos/{photo}", token).status == 200
    finally:
        leftovers = svc.stop_and_sweep(service)
    assert leftovers == []
    assert_service_kept_to_the_store(log, service.store, "strace-kiss")


def test_canary_in_a_kiss_photo_is_gone_after_release(tmp_path: Path) -> None:
    canary = Canary.random(seed=31)
    png = encode(with_canary(canary), ".png")
    start, end = png_chunk_span(png)
    patterns = {**encoded_patterns(png, start, end), **canary.pixel_patterns()}
    with svc.running(tmp_path, memfd_secret=False) as service:
        # A job keeps the photos' pixels only while it cuts the people out (a done job keeps
        # no plaintext), too short a window to scan reliably; that this scanner sees guest
        # pixels in this service is shown by test_canary_scan.py on an upload in flight.
        photos, job, token = kiss(service, png, mirrored())
        alive = scan(process_tree(service.pid), patterns)
        video = service.get(f"/api/jobs/{job}/outputs/kiss.mp4", token)
        assert video.status == 200
        assert service.delete(f"/api/jobs/{job}", token).status == 200
        for photo in photos:
            assert service.delete(f"/api/photos/{photo}", token).status == 200
        after = scan(process_tree(service.pid), patterns)
        assert service.store_files() == []
        print("\n[canary-kiss] " + json.dumps({"alive": alive.by_form(),
                                               "after": after.by_form(),
                                               "bytes_scanned": after.bytes_scanned}))
        assert {name: n for name, n in alive.by_form().items() if n} == {}
        assert {name: n for name, n in after.by_form().items() if n} == {}
        assert after.bytes_scanned > 10 << 20
