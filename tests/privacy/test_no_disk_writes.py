"""P1 and P5 under strace: a whole session of the real service writes no file outside the RAM
store and reaches for no address off this machine.

The service runs under ``strace -f`` (every thread and child), traced for every call that can
create, open for writing, truncate, rename, link or remove a file. The flow: a 12-megapixel
JPEG portrait, the result by session token and by one-time download token, a two-face job, a
canary PNG, a photo with no face (a failed job), deletes, then a graceful shutdown.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import service as svc
from tests.helpers.images import encode, twelve_megapixels, two_faces, with_canary
from tests.helpers.memscan import Canary
from tests.helpers.strace_log import STRACE_ARGS, off_box, outside, parse

pytestmark = [pytest.mark.slow, pytest.mark.needs_models]

# Written by the service but never holding image data, each for a stated reason.
ALLOWED_EXACT = ("/dev/null",)
ALLOWED_PREFIXES = (
    "/proc/self/", "/proc/thread-self/",  # the process's own settings (e.g. hardening)
    "/dev/shm/wgunicorn-",  # gunicorn's worker heartbeat: an empty, unlinked file on tmpfs
)


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
        assert big.status == 202, big.body
        job, token = big.json()["job_id"], big.json()["session_token"]
        status = service.wait_for_job(job, token)
        assert status["state"] == "done", status
        assert (status["result"]["width"], status["result"]["height"]) == (4000, 3000)
        assert service.get(f"/api/jobs/{job}/result", token).status == 200
        grant = service.request("POST", f"/api/jobs/{job}/download-token",
                                headers=bearer(token)).json()
        assert service.get(grant["download_url"]).status == 200

        pair = service.upload(encode(two_faces(), ".jpg"), "image/jpeg", token=token,
                              query="faces=2")
        assert pair.status == 202, pair.body
        assert service.wait_for_job(pair.json()["job_id"], token)["state"] == "done"

        canary = service.upload(encode(with_canary(Canary.random(seed=3)), ".png"),
                                token=token)
        assert service.wait_for_job(canary.json()["job_id"], token)["state"] == "done"

        blank = service.upload(encode(with_canary(Canary.random(seed=4))[:64, :64], ".png"),
                               token=token)
        assert service.wait_for_job(blank.json()["job_id"], token)["state"] == "failed"

        for job_id in (job, pair.json()["job_id"]):
            assert service.request("DELETE", f"/api/jobs/{job_id}",
                                   headers=bearer(token)).status == 200
    finally:
        svc.stop(service)  # SIGTERM: the graceful path, the worker releases the rest
        leftovers = service.store_files()
        svc.remove_store(service.store)
    assert leftovers == []

    trace = parse(log)
    store_root = str(service.store.parent) + "/"
    bad = outside(trace, (store_root, *ALLOWED_PREFIXES),
                  (*ALLOWED_EXACT, str(service.store.parent)))
    print("\n[strace] " + json.dumps({
        "calls_checked": trace.calls, "write_like_calls": len(trace.writes),
        "in_store": sum(1 for w in trace.writes if any(p.startswith(store_root)
                                                       for p in w.paths)),
        "outside_allow_list": len(bad)}))
    assert trace.calls > 100, "strace saw almost nothing: is the log the service's?"
    assert any(store_root in w.line for w in trace.writes), "no store write seen"
    assert bad == [], "\n".join(w.line for w in bad[:20])
    # P5: no CDN, fonts, telemetry or model downloads; the only peers are the test client on
    # loopback and local sockets.
    online = off_box(trace)
    print("[strace] " + json.dumps({"peers_seen": len(trace.peers), "off_box": len(online)}))
    assert online == [], "\n".join(p.line for p in online[:20])
