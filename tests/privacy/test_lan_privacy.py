"""P1, P3 and P5 for the LAN path: a phone's session over TLS writes no file outside the RAM
store, reaches for no address, and leaves nothing in the store once deleted.

The booth runs in its own network namespace under ``strace -f``; a guest in the LAN namespace
uploads a canary photo and a 12-megapixel portrait over TLS (the session in its cookie), runs
an effect, fetches the output and deletes the session. The development certificate is made
before the traced start (its files are the operator's, not a guest's).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from appliance.web.lan_tls import ensure_certificate
from tests.helpers.images import encode, twelve_megapixels, with_canary
from tests.helpers.lan_booth import ORIGIN, Reply, running_booth
from tests.helpers.memscan import Canary
from tests.helpers.netns import BOOTH_LAN
from tests.helpers.strace_log import STRACE_ARGS, assert_service_kept_to_the_store

pytestmark = [
    pytest.mark.slow, pytest.mark.needs_models,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None
                       or shutil.which("strace") is None,
                       reason="needs root, iproute2 and strace (make installs them)")]


def test_a_phone_session_over_tls_writes_nothing_and_reaches_nobody(tmp_path: Path) -> None:
    ensure_certificate(tmp_path / "tls" / "server.pem", tmp_path / "tls" / "server.key",
                       BOOTH_LAN)
    log = tmp_path / "strace.log"
    with running_booth(tmp_path, wrapper=("strace", *STRACE_ARGS, "-o", str(log))) as booth:
        upload = {"method": "POST", "url": ORIGIN + "/api/photos",
                  "headers": {"Content-Type": "image/jpeg", "Origin": ORIGIN,
                              "X-Ephemera-Consent": "adults-consenting"}}
        portrait = Reply(booth.run("lan", [{
            **upload, "body_b64": base64.b64encode(encode(twelve_megapixels(), ".jpg")).decode()
        }])[0])
        assert portrait.status == 201, portrait.raw
        cookie = portrait.cookies[0].split(";")[0]
        with_session = {**upload["headers"], "Cookie": cookie}
        canary = Reply(booth.run("lan", [{
            **upload, "headers": with_session,
            "body_b64": base64.b64encode(encode(with_canary(Canary.random(seed=9)),
                                                ".jpg")).decode()}])[0])
        assert canary.status == 201, canary.raw
        wanted = json.dumps({"effect": "faces", "photos": [canary.json()["photo_id"]]})
        job = booth.one("lan", "/api/jobs", "POST", headers={
            "Content-Type": "application/json", "Origin": ORIGIN, "Cookie": cookie},
            body_b64=base64.b64encode(wanted.encode()).decode())
        assert job.status == 202, job.raw
        # The phone page follows its job with a progress stream: under strace too.
        (followed,) = booth.run("lan", [{
            "streams": 1, "url": f"{ORIGIN}/api/jobs/{job.json()['job_id']}/events",
            "headers": {"Cookie": cookie}}])
        stream = Reply(followed["streams"][0])
        assert stream.status == 200, stream.raw
        last = stream.body.decode().strip().split("\n\n")[-1]
        assert last.startswith("data:") and json.loads(last[5:])["state"] == "done"
        status: dict[str, object] = {}
        for _ in range(240):
            status = booth.one("lan", f"/api/jobs/{job.json()['job_id']}",
                               headers={"Cookie": cookie}).json()
            if status["state"] in ("done", "failed"):
                break
        assert status["state"] == "done", status
        outputs = status["outputs"]
        assert isinstance(outputs, list)
        output = booth.one("lan", outputs[0]["url"], headers={"Cookie": cookie})
        assert output.status == 200 and output.body[:3] == b"\xff\xd8\xff"
        gone = booth.one("lan", "/api/session", "DELETE",
                         headers={"Cookie": cookie, "Origin": ORIGIN})
        assert gone.status == 200
        left = [p for p in booth.store.rglob("*") if p.is_file()] if booth.store.exists() else []
        assert left == []
        store_root_dir = booth.store
    assert_service_kept_to_the_store(log, store_root_dir, "strace-lan")
