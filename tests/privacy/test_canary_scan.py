"""P3 through the real service: a canary planted in a photo is in the live process while its
upload arrives (the scanner's proof that it sees the worker's secure buffers), nowhere in
plaintext once its job is done or while only the photo is kept (it is ciphertext in the store),
and nowhere at all once the session is deleted, after every registered effect ran on it.

The service is the real one (``python -m appliance serve``: gunicorn, one gthread worker, the
malloc environment, the reference models on ONNX Runtime); the test talks HTTP to 127.0.0.1 and
reads the worker's memory through /proc/PID/maps and /proc/PID/mem.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from appliance.secure.buffers import memfd_secret_available
from tests.helpers import service as svc
from tests.helpers.effects_run import run_every_effect
from tests.helpers.images import camera_bgr, encode, png_chunk_span, with_canary
from tests.helpers.memscan import Canary, ScanResult, encoded_patterns, process_tree, scan

pytestmark = [pytest.mark.slow, pytest.mark.needs_models]


def canary_upload(seed: int) -> tuple[bytes, dict[str, bytes]]:
    canary = Canary.random(seed=seed)
    png = encode(with_canary(canary), ".png")
    start, end = png_chunk_span(png)
    return png, {**encoded_patterns(png, start, end), **canary.pixel_patterns()}


def report(name: str, figures: dict[str, object]) -> None:
    """Measured figures for docs/THREAT_MODEL.md, shown with ``pytest -s``."""
    print(f"\n[{name}] " + json.dumps(figures, sort_keys=True))


def clean(result: ScanResult) -> dict[str, int]:
    return {name: n for name, n in result.by_form().items() if n}


def test_canary_found_while_a_job_lives_and_gone_after_release(service: svc.Service) -> None:
    png, patterns = canary_upload(seed=11)
    # The service fixture runs with memfd_secret off, so the scanner can see inside. Proof that
    # it does: an upload still arriving lies in the worker (in the secure buffer the server
    # reads it into) and the scanner finds it there. (A done job keeps no plaintext: it
    # releases the pixels it decrypted as soon as its outputs are encrypted.)
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as arriving:
        arriving.sendall(b"POST /api/photos HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                         b"X-Ephemera-Consent: adults-consenting\r\n"
                         + f"Content-Length: {len(png)}\r\n\r\n".encode() + png[:-1])
        time.sleep(1.0)  # the server has read it
        # Only the file's own windows: a scan for every form takes longer than the server
        # keeps a stalled upload (it drops one idle for 10 s, wiping its buffer).
        file_windows = {name: p for name, p in patterns.items() if name.startswith("png#")}
        alive = scan(process_tree(service.pid), file_windows)
    forms = alive.by_form()
    assert forms["png"] > 0, forms
    assert alive.bytes_scanned > 10 << 20
    photo_id, job_id, token = service.photo_job(png)
    status = service.wait_for_job(job_id, token)
    assert status["state"] == "done", status
    result = service.get(status["outputs"][0]["url"], token)
    assert result.status == 200 and result.body[:3] == b"\xff\xd8\xff"
    assert result.headers["cache-control"] == "no-store"
    # The delivered JPEG is guest data too: its bytes must not outlive the response
    # (decrypted plaintext, the response chunks) in the service.
    patterns.update({name.replace("png", "result"): window for name, window in
                     encoded_patterns(result.body, 1024, len(result.body)).items()})

    done = scan(process_tree(service.pid), patterns)
    assert clean(done) == {}, done.by_form()  # a done job holds no plaintext of the photo

    assert service.delete(f"/api/jobs/{job_id}", token).status == 200
    # The photo stays for another effect, as ciphertext only: no plaintext pixels remain.
    kept = scan(process_tree(service.pid), patterns)
    assert clean(kept) == {}, kept.by_form()
    assert len(service.store_files()) == 1

    # Every registered effect on the canary photo (and a second face for effects taking
    # two photos): all its outputs fetched, then the whole session deleted.
    second = service.upload(encode(camera_bgr(), ".png"), token=token)
    assert second.status == 201, second.body
    ran = run_every_effect(service, token, [photo_id, second.json()["photo_id"]])
    for key, status in ran.items():
        for name, body in status["bodies"].items():
            if len(body) > 4096:
                patterns.update({f"{key}:{name}:{form}": window for form, window in
                                 encoded_patterns(body, 1024, len(body)).items()})
    assert service.delete("/api/session", token).status == 200
    after = scan(process_tree(service.pid), patterns)
    assert service.store_files() == []
    report("canary-memfd-off", {"alive": forms, "after": after.by_form(),
                                "effects": sorted(ran), "bytes_scanned":
                                after.bytes_scanned, "regions": after.regions,
                                "pids": len(after.pids)})
    assert clean(after) == {}
    assert after.bytes_scanned > 10 << 20


@pytest.mark.skipif(not memfd_secret_available(), reason="this kernel has no memfd_secret "
                    "(Linux < 5.14 or secretmem disabled): buffers fall back to mlock'd memory")
def test_with_memfd_secret_even_a_live_job_is_invisible(tmp_path: Path) -> None:
    png, patterns = canary_upload(seed=12)
    with svc.running(tmp_path, memfd_secret=True) as service:
        _photo, job_id, token = service.photo_job(png)
        assert service.wait_for_job(job_id, token)["state"] == "done"
        alive = scan(process_tree(service.pid), patterns)
        service.delete("/api/session", token)
        after = scan(process_tree(service.pid), patterns)
        report("canary-memfd-on", {"alive": alive.by_form(), "after": after.by_form(),
                                   "bytes_scanned": after.bytes_scanned})
        assert clean(alive) == {}
        assert clean(after) == {}
