"""The booth's camera and printer paths join the privacy proofs, through the real service.

* strace (P1, P5): a capture from the GStreamer camera, an effect on it, a print to a real
  ``ippeveprinter`` and every bad print request write no file outside the RAM store and reach
  no address off this machine;
* canary scan (P3): once the session is deleted, the service's memory holds no window of the
  document the printer received, nor of the result it was rendered from;
* bad input: each bad print request (unknown job or output, a video, over the session's limit,
  printing off, a phone when phones may not print) gets its 4xx JSON and leaves nothing behind;
* crash (P2): kill -9 after a capture and a print leaves only ciphertext in the store, and the
  restart sweeps it.

The camera is GStreamer's ``imagefreeze`` over a photo of a face (scikit-image's astronaut), the
same code path as a CSI camera; ``videotestsrc`` holds no face for the gate to accept.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from skimage import data as skdata

from appliance.effects.registry import effects
from tests.helpers import ipp_printer
from tests.helpers import service as svc
from tests.helpers.images import camera_bgr, encode
from tests.helpers.ipp_forward import Forwarder, forwarder
from tests.helpers.memscan import encoded_patterns, process_tree, scan
from tests.helpers.strace_log import STRACE_ARGS, assert_service_kept_to_the_store
from tests.privacy.test_crash import entropy_bits_per_byte

pytestmark = [pytest.mark.slow, pytest.mark.needs_models,
              pytest.mark.skipif(shutil.which("gst-launch-1.0") is None
                                 or shutil.which("strace") is None,
                                 reason="needs GStreamer and strace (make system-deps)"),
              pytest.mark.skipif(not ipp_printer.available(),
                                 reason="needs root, ippeveprinter (cups-ipp-utils), avahi")]

ASTRONAUT = Path(skdata.__file__).parent / "astronaut.png"
CONSENT = {"X-Ephemera-Consent": "adults-consenting"}


@pytest.fixture
def printer() -> Iterator[tuple[ipp_printer.Printer, Forwarder]]:
    with ipp_printer.ipp_printer() as fresh, forwarder() as port:
        port.printer = fresh
        yield fresh, port


def hardware_env(port: Forwarder, limit: int = 1) -> dict[str, str]:
    pipeline = (f"filesrc location={ASTRONAUT} ! pngdec ! imagefreeze is-live=true "
                "! video/x-raw,framerate=10/1")
    return {"EPHEMERA_CAMERA_SOURCE": "gstreamer", "EPHEMERA_CAMERA_PIPELINE": pipeline,
            "EPHEMERA_CAMERA_STILL_SIZE": "512,512", "EPHEMERA_CAMERA_PREVIEW_SIZE": "256,256",
            "EPHEMERA_PRINTER_ENABLED": "1", "EPHEMERA_PRINTER_URI": port.uri,
            "EPHEMERA_PRINTER_PER_SESSION_LIMIT": str(limit),
            "EPHEMERA_PRINTER_TIMEOUT_S": "20"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def expect(reply: svc.Reply, status: int, code: str) -> None:
    assert reply.status == status, (code, reply.status, reply.body[:300])
    body = reply.json()
    assert body["error"] == code and body["message"] and body.get("remedy"), body


def capture(service: svc.Service, token: str | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while not service.get("/api/camera/state").json()["ready"]:
        assert time.monotonic() < deadline, service.get("/api/camera/state").json()
        time.sleep(0.2)
    shot = service.request("POST", "/api/camera/capture",
                           headers={**CONSENT, **(bearer(token) if token else {})})
    assert shot.status == 201, shot.body
    body: dict[str, Any] = shot.json()
    return body


def captured_job(service: svc.Service) -> tuple[str, str, str, bytes]:
    """A capture, the face check on it: (token, job id, output name, the output's bytes)."""
    shot = capture(service)
    token = shot["session_token"]
    job = service.start_job(token, [shot["photo_id"]])
    assert job.status == 202, job.body
    status = service.wait_for_job(job.json()["job_id"], token)
    assert status["state"] == "done", status
    output = next(o for o in status["outputs"] if o["media_type"] == "image/jpeg")
    body = service.get(output["url"], token).body
    return token, job.json()["job_id"], output["name"], body


def printed(printer: ipp_printer.Printer, timeout: float = 30) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = [p for p in printer.spool.rglob("*.jpg") if p.is_file()]
        if files:
            time.sleep(0.3)  # written whole
            return [p.read_bytes() for p in files]
        time.sleep(0.2)
    return []


def video_effect() -> str | None:
    for key, effect in effects().items():
        if any(o["media_type"].startswith("video/") for o in effect.describe()["outputs"]):
            return key
    return None


def test_capture_and_print_write_nothing_outside_the_store_and_leave_no_trace(
        tmp_path: Path, printer: tuple[ipp_printer.Printer, Forwarder]) -> None:
    device, port = printer
    log = tmp_path / "strace.log"
    service = svc.start(tmp_path, wrapper=("strace", *STRACE_ARGS, "-o", str(log)),
                        env=hardware_env(port), ready_timeout=180)
    patterns: dict[str, bytes] = {}
    try:
        token, job, name, result = captured_job(service)
        url = f"/api/jobs/{job}/outputs/{name}/print"
        answer = service.request("POST", url, headers=bearer(token))
        assert answer.status == 202, answer.body
        assert answer.json()["prints_left"] == 0
        documents = printed(device)
        assert documents, "the print never reached the printer"
        for index, document in enumerate(documents):
            patterns.update({f"print{index}-{k}": v for k, v in
                             encoded_patterns(document, 1024, len(document)).items()})
        patterns.update({f"result-{k}": v for k, v in
                         encoded_patterns(result, 1024, len(result)).items()})

        # Bad print requests: each its own 4xx, nothing printed, nothing kept.
        expect(service.request("POST", url, headers=bearer(token)), 429, "print_limit")
        expect(service.request("POST", f"/api/jobs/{job}/outputs/nothing.jpg/print",
                               headers=bearer(token)), 404, "output_not_found")
        expect(service.request("POST", f"/api/jobs/no-such-job/outputs/{name}/print",
                               headers=bearer(token)), 404, "job_not_found")
        expect(service.request("POST", url), 401, "token_required")
        kiss = video_effect()
        if kiss is not None:
            second = service.upload(encode(camera_bgr(), ".png"), token=token)
            assert second.status == 201, second.body
            shot = capture(service, token)
            video_job = service.start_job(token, [shot["photo_id"],
                                                  second.json()["photo_id"]], kiss)
            assert video_job.status == 202, video_job.body
            status = service.wait_for_job(video_job.json()["job_id"], token, 300)
            assert status["state"] == "done", status
            video = next(o for o in status["outputs"] if o["media_type"].startswith("video/"))
            expect(service.request(
                "POST", f"/api/jobs/{video_job.json()['job_id']}/outputs/{video['name']}/print",
                headers=bearer(token)), 415, "not_printable")
        assert len(printed(device, timeout=2)) == len(documents), "a refused request printed"

        assert service.delete("/api/session", token).status == 200
        assert service.store_files() == []
        # The service's processes, not strace itself: strace keeps the first 4096 bytes of
        # every sendto it traces (the print's first bytes among them) in its own memory.
        traced = [pid for pid in process_tree(service.pid) if pid != service.pid]
        after = scan(traced, patterns)
        found = {k: n for k, n in after.counts.items() if n}
        print("\n[print canary] " + json.dumps({"patterns": len(patterns),
                                                "bytes_scanned": after.bytes_scanned,
                                                "found": len(found)}))
        assert after.bytes_scanned > 10 << 20
        assert found == {}, f"traces of the printed picture in the service: {found}"
    finally:
        leftovers = svc.stop_and_sweep(service)
    assert leftovers == []
    trace = assert_service_kept_to_the_store(log, service.store, "strace-hardware")
    assert any(str(port.port) in p.line for p in trace.peers), "the printer was never reached"


def test_kill_9_after_capture_and_print_leaves_only_ciphertext(
        tmp_path: Path, printer: tuple[ipp_printer.Printer, Forwarder]) -> None:
    device, port = printer
    service = svc.start(tmp_path, env=hardware_env(port, limit=2), ready_timeout=180)
    store = service.store
    try:
        token, job, name, result = captured_job(service)
        answer = service.request("POST", f"/api/jobs/{job}/outputs/{name}/print",
                                 headers=bearer(token))
        assert answer.status == 202, answer.body
        documents = printed(device)
        assert documents
        kept = capture(service, token)  # a second capture, kept as a photo of the session
    finally:
        svc.stop(service, hard=True)
    restarted = None
    try:
        leftovers = [p for p in store.rglob("*") if p.is_file()]
        assert len(leftovers) >= 3, leftovers  # two captured photos and the result
        windows = [w for body in (result, *documents)
                   for w in (body[i:i + 32] for i in range(1024, len(body) - 32,
                                                           len(body) // 16))]
        for path in leftovers:
            blob = path.read_bytes()
            assert b"\xff\xd8\xff" not in blob[:64] and b"JFIF" not in blob[:4096]
            assert entropy_bits_per_byte(blob) > 7.9
            assert not any(w in blob for w in windows), "plaintext found in the store"
        restarted = svc.start(tmp_path, store=store, env=hardware_env(port, limit=2),
                              ready_timeout=180)
        assert [p for p in store.rglob("*") if p.is_file()] == []
        gone = restarted.get(f"/api/photos/{kept['photo_id']}", token)
        assert gone.status == 403 and gone.json()["error"] == "token_invalid"
        expect(restarted.request("POST", f"/api/jobs/{job}/outputs/{name}/print",
                                 headers=bearer(token)), 403, "token_invalid")
    finally:
        if restarted is not None:
            svc.stop(restarted)
        svc.remove_store(store)


def test_print_refused_when_off_or_from_a_phone_leaves_nothing(tmp_path: Path) -> None:
    """Printing off: 404 printing_off before any session or job is looked at. The phone case
    runs in the app itself (a LAN request as the TLS listener hands it over)."""
    with svc.running(tmp_path) as service:
        expect(service.request("POST", "/api/jobs/x/outputs/y.jpg/print"), 404, "printing_off")
        assert service.get("/api/printer/state").json()["state"] == "disabled"
        assert service.store_files() == []

    from appliance.config import load_config
    from appliance.secure.buffers import REGISTRY
    from appliance.web.app import create_app, shutdown_app
    from tests.hardware.test_booth_api import LAN, LAN_BASE, WITH_LAN

    store = Path("/dev/shm") / f"ephemera-phone-print-{secrets.token_hex(6)}"
    app = create_app(load_config(env={
        "EPHEMERA_STORE_PATH": str(store / "store"), "EPHEMERA_PRINTER_ENABLED": "1",
        "EPHEMERA_PRINTER_URI": "ipp://127.0.0.1:9/ipp/print", **WITH_LAN}))
    try:
        client = app.test_client()
        reply = client.open(LAN_BASE + "/api/jobs/x/outputs/y.jpg/print", method="POST",
                            environ_base=LAN, headers={"Origin": LAN_BASE})
        assert reply.status_code == 403 and reply.json["error"] == "kiosk_only", reply.json
        assert reply.json["message"] and reply.json["remedy"]
        state = client.open(LAN_BASE + "/api/printer/state", environ_base=LAN,
                            headers={"Origin": LAN_BASE}).json
        assert state["offered"] is False
        assert [p for p in store.rglob("*") if p.is_file()] == []
        assert not [b for b in REGISTRY.live() if b.owner.endswith("-print")]
    finally:
        shutdown_app(app)
        shutil.rmtree(store, ignore_errors=True)
