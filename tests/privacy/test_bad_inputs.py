"""Every bad input of the README's error table, through HTTP to the real service: each gets its
own 4xx JSON error, and afterwards the RAM store is empty and a memory scan finds no trace of the
canaries those bad uploads carried."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.helpers import service as svc
from tests.helpers.images import (
    animated_png,
    astronaut_bgr,
    bomb_png,
    encode,
    no_face,
    png_chunk_span,
    two_faces,
    with_canary,
)
from tests.helpers.memscan import Canary, encoded_patterns, process_tree, scan

pytestmark = [pytest.mark.slow, pytest.mark.needs_models]


def raw_post(port: int, headers: dict[str, str], body: bytes = b"",
             keep_open: bool = False) -> tuple[str, socket.socket | None]:
    """Send a request by hand (lying Content-Length, chunked, a body that never ends)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = "POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode() + body)
    if keep_open:
        return "", sock
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    return data.decode(errors="replace"), None


def expect(reply: svc.Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, (code, reply.status, reply.body[:300])
    body: dict[str, Any] = reply.json()
    assert body["error"] == code, body
    assert body["message"] and body.get("remedy"), body
    return body


def failed_job(service: svc.Service, data: bytes, code: str, query: str = "") -> None:
    reply = service.upload(data, "image/png", query=query)
    assert reply.status == 202, reply.body
    job, token = reply.json()["job_id"], reply.json()["session_token"]
    status = service.wait_for_job(job, token)
    assert status["state"] == "failed" and status["error"]["error"] == code, status
    expect(service.get(f"/api/jobs/{job}/result", token), 422, code)
    assert service.request("DELETE", f"/api/jobs/{job}",
                           headers={"Authorization": f"Bearer {token}"}).status == 200


def test_every_bad_input_gets_its_error_and_leaves_nothing(tmp_path: Path) -> None:
    canaries = [Canary.random(seed=s) for s in (21, 22, 23)]
    patterns: dict[str, bytes] = {}
    for index, canary in enumerate(canaries):
        patterns.update({f"{k}@{index}": v for k, v in canary.pixel_patterns().items()})
    canary_png = encode(with_canary(canaries[0]), ".png")
    start, end = png_chunk_span(canary_png)
    patterns.update({f"{k}@png": v for k, v in encoded_patterns(canary_png, start, end).items()})
    env = {"EPHEMERA_QUEUE_DEPTH": "1", "EPHEMERA_STORE_MAX_JOBS": "1"}
    with svc.running(tmp_path, env=env) as service:
        expect(service.upload(canary_png, consent=False), 400, "consent_required")
        expect(service.upload(canary_png, "text/plain"), 415, "unsupported_format")
        expect(service.upload(b"GIF89a" + bytes(200), "image/png"), 415, "unsupported_format")
        expect(service.upload(np.random.default_rng(1).bytes(5000), "image/png"), 415,
               "not_an_image")
        expect(service.upload(canary_png[: len(canary_png) // 2]), 400, "truncated_image")
        expect(service.upload(b""), 400, "empty_upload")
        expect(service.upload(animated_png(canary_png)), 415, "unsupported_mode")
        noise = np.random.default_rng(2).integers(0, 256, (100, 10_001, 3), dtype=np.uint8)
        expect(service.upload(encode(noise, ".png")), 413, "too_many_pixels")
        expect(service.upload(bomb_png(12_000)), 413, "decompression_bomb")
        expect(service.upload(canary_png, query="faces=3"), 400, "bad_param")
        expect(service.upload(canary_png, query="kind=karaoke"), 400, "unknown_effect")
        expect(service.upload(canary_png, query="retention_minutes=1441"), 400,
               "bad_retention_minutes")
        expect(service.upload(canary_png, token="not-a-session"), 403, "token_invalid")

        text, _ = raw_post(service.port, {"Content-Type": "image/png",
                                          "Content-Length": str(30 << 20),
                                          **svc.CONSENT})
        assert " 413 " in text.splitlines()[0] and "too_many_bytes" in text, text[:300]
        text, _ = raw_post(service.port, {"Content-Type": "image/png",
                                          "Transfer-Encoding": "chunked", **svc.CONSENT},
                           b"5\r\nhello\r\n0\r\n\r\n")
        assert " 411 " in text.splitlines()[0] and "length_required" in text, text[:300]

        # An upload that is still arriving holds no queue place, thread or job: the serving
        # layer reads it; another upload is answered meanwhile.
        _, held = raw_post(service.port, {"Content-Type": "image/png",
                                          "Content-Length": str(len(canary_png)),
                                          **svc.CONSENT}, canary_png[:1000], keep_open=True)
        assert held is not None
        expect(service.upload(b"GIF89a" + bytes(200), "image/png"), 415, "unsupported_format")
        held.close()  # an upload that stops early: dropped before the application sees it
        # The queue (depth 1) is full while a job runs: retry briefly rather than race.
        busy = svc.Reply(0, {}, b"")
        for _attempt in range(20):
            running = service.upload(encode(no_face(canaries[1]), ".png"), "image/png")
            assert running.status == 202, running.body
            busy = service.upload(b"GIF89a-never-read", "image/png")  # refused before its body
            job, token = running.json()["job_id"], running.json()["session_token"]
            service.wait_for_job(job, token)
            assert service.request("DELETE", f"/api/jobs/{job}",
                                   headers={"Authorization": f"Bearer {token}"}).status == 200
            if busy.status == 429:
                break
        body = expect(busy, 429, "queue_full")
        assert body["retry_after_s"] >= 1 and busy.headers["retry-after"]

        failed_job(service, encode(no_face(canaries[1]), ".png"), "no_face")
        failed_job(service, encode(two_faces(), ".png"), "too_many_faces")
        small = cv2.resize(astronaut_bgr(), None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
        failed_job(service, encode(small, ".png"), "face_too_small")
        cut = np.ascontiguousarray(astronaut_bgr()[:, 205:])
        failed_job(service, encode(cut, ".png"), "face_cut_off")
        blurred = cv2.GaussianBlur(astronaut_bgr(), (0, 0), 2.5)
        failed_job(service, encode(blurred, ".png"), "blurry")

        # A done job holds the store's one slot: the next upload finds the store full.
        good = service.upload(encode(astronaut_bgr(), ".jpg"), "image/jpeg")
        assert good.status == 202, good.body
        job, token = good.json()["job_id"], good.json()["session_token"]
        assert service.wait_for_job(job, token)["state"] == "done"
        expect(service.upload(encode(with_canary(canaries[2]), ".png")), 429, "store_full")

        # Tokens: none or forged (a foreign session's token: tests/jobs/test_manager.py).
        expect(service.get(f"/api/jobs/{job}"), 401, "token_required")
        expect(service.get(f"/api/jobs/{job}", "forged"), 403, "token_invalid")
        expect(service.get(f"/api/jobs/{job}/result?download=forged"), 403, "token_invalid")
        assert service.request("DELETE", f"/api/jobs/{job}",
                               headers={"Authorization": f"Bearer {token}"}).status == 200
        expect(service.get(f"/api/jobs/{job}", token), 404, "job_not_found")

        assert service.store_files() == []
        clean = scan(process_tree(service.pid), patterns)
        print(f"\n[bad-inputs] bytes_scanned={clean.bytes_scanned} forms={clean.by_form()}")
        assert {k: v for k, v in clean.counts.items() if v} == {}
