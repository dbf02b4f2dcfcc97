"""P1 and P5 under strace: a whole session of the real service writes no file outside the RAM
store and reaches for no address off this machine.

The service runs under ``strace -f`` (every thread and child), traced for every call that can
create, open for writing, truncate, rename, link or remove a file. The flow: a 12-megapixel
JPEG portrait as a photo, the face check's output by session token, by a byte range and by
one-time download token, every registered effect on it (with a second photo where an effect
takes two), a two-face job, a canary PNG, a photo with no face (refused at upload), deletes of a
job, a photo and a session, then a graceful shutdown with a session still alive.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import service as svc
from tests.helpers.effects_run import run_every_effect
from tests.helpers.images import camera_bgr, encode, twelve_megapixels, two_faces, with_canary
from tests.helpers.memscan import Canary
from tests.helpers.strace_log import STRACE_ARGS, assert_service_kept_to_the_store

pytestmark = [pytest.mark.slow, pytest.mark.needs_models]

def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed "
                    "(make system-deps installs it)")
def test_full_flow_writes_nothing_outside_the_ram_store(tmp_path: Path) -> None:
    log = tmp_path / "strace.log"
    service = svc.start(tmp_path, wrapper=("strace", *STRACE_ARGS, "-o", str(log)),
                        ready_timeout=180)
    try:
        big = service.upload(encode(twelve_megapixels(), ".jpg"), "image/jpeg")
        assert big.status == 201, big.body
        photo, token = big.json()["photo_id"], big.json()["session_token"]
        assert (big.json()["width"], big.json()["height"]) == (4000, 3000)
        reply = service.start_job(token, [photo])
        assert reply.status == 202, reply.body
        job = reply.json()["job_id"]
        status = service.wait_for_job(job, token)
        assert status["state"] == "done", status
        url = status["outputs"][0]["url"]
        assert service.get(url, token).status == 200
        assert service.get(url, token, headers={"Range": "bytes=0-1023"}).status == 206
        grant = service.request("POST", f"/api/jobs/{job}/download-token",
                                headers=bearer(token)).json()
        assert service.get(grant["download_url"]).status == 200

        # Every registered effect on the 12-megapixel photo (a second photo where it takes
        # two), every output fetched.
        second = service.upload(encode(camera_bgr(), ".png"), token=token)
        assert second.status == 201, second.body
        ran = run_every_effect(service, token, [photo, second.json()["photo_id"]])

        _pair, pair_job, _ = service.photo_job(encode(two_faces(), ".jpg"), "image/jpeg",
                                               token=token, params={"faces": 2},
                                               query="faces=2")
        assert service.wait_for_job(pair_job, token)["state"] == "done"

        _canary, canary_job, _ = service.photo_job(
            encode(with_canary(Canary.random(seed=3)), ".png"), token=token)
        assert service.wait_for_job(canary_job, token)["state"] == "done"

        blank = service.upload(encode(with_canary(Canary.random(seed=4))[:64, :64], ".png"),
                               token=token)
        assert blank.status == 422 and blank.json()["error"] == "no_face"

        assert service.delete(f"/api/jobs/{job}", token).status == 200
        assert service.delete(f"/api/photos/{photo}", token).status == 200
        assert service.delete("/api/session", token).status == 200
        # A second session left alive: the graceful shutdown releases it.
        _left, left_job, left_token = service.photo_job(encode(camera_bgr(), ".png"))
        assert service.wait_for_job(left_job, left_token)["state"] == "done"
    finally:
        # SIGTERM: the graceful path, the worker releases the rest
        leftovers = svc.stop_and_sweep(service)
    assert leftovers == []

    assert_service_kept_to_the_store(log, service.store, "strace " + ",".join(sorted(ran)))
