"""Every bad input of the README's error table, through HTTP to the real service: each gets its
own 4xx JSON error (a bad photo at upload, a bad job request before anything is queued, a bad
output or range request), and afterwards the RAM store is empty and a memory scan finds no trace
of the canaries those bad uploads carried."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.effects.registry import effects
from tests.helpers import service as svc
from tests.helpers.images import (
    animated_png,
    astronaut_bgr,
    bomb_png,
    camera_bgr,
    encode,
    no_face,
    png_chunk_span,
    twelve_megapixels,
    two_faces,
    with_canary,
)
from tests.helpers.memscan import Canary, encoded_patterns, process_tree, scan

pytestmark = [pytest.mark.slow, pytest.mark.needs_models]


def raw_post(port: int, headers: dict[str, str], body: bytes = b"",
             keep_open: bool = False) -> tuple[str, socket.socket | None]:
    """Send a photo by hand (lying Content-Length, chunked, a body that never ends)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = "POST /api/photos HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(
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


def job_request(service: svc.Service, token: str, body: bytes) -> svc.Reply:
    return service.request("POST", "/api/jobs", body, {
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})


def test_every_bad_input_gets_its_error_and_leaves_nothing(tmp_path: Path) -> None:
    canaries = [Canary.random(seed=s) for s in (21, 22, 23)]
    patterns: dict[str, bytes] = {}
    for index, canary in enumerate(canaries):
        patterns.update({f"{k}@{index}": v for k, v in canary.pixel_patterns().items()})
    canary_png = encode(with_canary(canaries[0]), ".png")
    start, end = png_chunk_span(canary_png)
    patterns.update({f"{k}@png": v for k, v in encoded_patterns(canary_png, start, end).items()})
    env = {"EPHEMERA_QUEUE_DEPTH": "1", "EPHEMERA_STORE_MAX_JOBS": "3"}
    with svc.running(tmp_path, env=env) as service:
        # Photos refused on their headers, their bytes or their faces: 4xx at upload.
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
        expect(service.upload(canary_png, query="faces=3"), 400, "bad_faces")
        expect(service.upload(canary_png, query="faces=%C2%B2"), 400, "bad_faces")
        expect(service.upload(canary_png, query="effect=karaoke"), 400, "unknown_effect")
        expect(service.upload(canary_png, query="retention_minutes=1441"), 400,
               "bad_retention_minutes")
        expect(service.upload(canary_png, token="not-a-session"), 403, "token_invalid")
        text, _ = raw_post(service.port, {"Content-Type": "image/png",
                                          "Content-Length": str(30 << 20), **svc.CONSENT})
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

        expect(service.upload(encode(no_face(canaries[1]), ".png")), 422, "no_face")
        expect(service.upload(encode(two_faces(), ".png"), query="faces=1"), 422,
               "too_many_faces")
        expect(service.upload(canary_png, query="faces=2"), 422, "too_few_faces")
        small = cv2.resize(astronaut_bgr(), None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
        expect(service.upload(encode(small, ".png")), 422, "face_too_small")
        cut = np.ascontiguousarray(astronaut_bgr()[:, 205:])
        expect(service.upload(encode(cut, ".png")), 422, "face_cut_off")
        blurred = cv2.GaussianBlur(astronaut_bgr(), (0, 0), 2.5)
        expect(service.upload(encode(blurred, ".png")), 422, "blurry")

        # Job requests refused before anything is queued.
        good = service.upload(encode(twelve_megapixels(), ".jpg"), "image/jpeg")
        assert good.status == 201, good.body
        photo, token = good.json()["photo_id"], good.json()["session_token"]
        theirs = service.upload(encode(camera_bgr(), ".png"))
        assert theirs.status == 201, theirs.body
        expect(service.start_job(None, [photo]), 401, "token_required")
        expect(service.start_job("forged", [photo]), 403, "token_invalid")
        expect(job_request(service, token, b"{not json"), 400, "bad_job_request")
        expect(job_request(service, token, b'{"effect": "faces", "photos": "p"}'), 400,
               "bad_job_request")
        expect(service.start_job(token, [photo], "karaoke"), 400, "unknown_effect")
        expect(service.start_job(token, [photo], params={"faces": "\u00b2"}), 400, "bad_param")
        expect(service.start_job(token, [photo], params={"faces": 9}), 400, "bad_param")
        expect(service.start_job(token, [photo], params={"zoom": 1}), 400, "bad_param")
        expect(service.start_job(token, [photo, photo]), 400, "duplicate_photo")
        expect(service.start_job(token, [theirs.json()["photo_id"]]), 404,
               "photo_not_found")  # another session's photo: as if it did not exist
        expect(service.start_job(token, [photo], params={"faces": 2}), 422, "too_few_faces")
        # The baby: two photos of one face each, eyes open.
        expect(service.start_job(token, [photo], "baby"), 400, "wrong_photo_count")
        expect(service.start_job(token, [photo, "other-1", "other-2"], "baby"), 400,
               "wrong_photo_count")
        expect(service.start_job(token, [photo, photo], "baby"), 400, "duplicate_photo")
        expect(service.start_job(token, [photo], "baby", {"resemblance": 2}), 400,
               "wrong_photo_count")
        expect(service.upload(encode(two_faces(), ".png"), query="effect=baby"), 422,
               "too_many_faces")
        expect(service.upload(encode(no_face(canaries[1]), ".png"), query="effect=baby"), 422,
               "no_face")
        pair = service.upload(encode(two_faces(), ".png"), token=token, query="faces=2")
        assert pair.status == 201, pair.body
        expect(service.start_job(token, [photo, pair.json()["photo_id"]], "baby"), 422,
               "too_many_faces")
        expect(service.start_job(token, [photo, pair.json()["photo_id"]], "baby",
                                 {"resemblance": "x"}), 400, "bad_param")
        assert service.delete(f"/api/photos/{pair.json()['photo_id']}", token).status == 200
        for key, effect in effects().items():
            if effect.photos[1] < 8:
                expect(service.start_job(token, [photo] * 9, key), 400, "bad_job_request")

        # The queue (depth 1) is full while a 12-megapixel job waits or runs.
        busy = svc.Reply(0, {}, b"")
        for _ in range(10):
            first = service.start_job(token, [photo])
            assert first.status == 202, first.body
            busy = service.start_job(token, [photo])
            if busy.status == 429:
                break
            service.delete(f"/api/jobs/{first.json()['job_id']}", token)
            if busy.status == 202:
                service.delete(f"/api/jobs/{busy.json()['job_id']}", token)
        body = expect(busy, 429, "queue_full")
        assert body["retry_after_s"] >= 1 and busy.headers["retry-after"]
        job = first.json()["job_id"]
        status = service.wait_for_job(job, token)
        assert status["state"] == "done", status
        # Two photos and a done job hold the store's three slots: the next photo finds it full.
        expect(service.upload(encode(with_canary(canaries[2]), ".png"), token=token), 429,
               "store_full")

        # Outputs and tokens.
        output = status["outputs"][0]
        expect(service.get(f"/api/jobs/{job}/outputs/other.jpg", token), 404,
               "output_not_found")
        reply = service.get(output["url"], token, headers={"Range": "bytes=999999999-"})
        expect(reply, 416, "range_not_satisfiable")
        assert reply.headers["content-range"] == f"bytes */{output['bytes']}"
        expect(service.get(f"/api/jobs/{job}"), 401, "token_required")
        expect(service.get(f"/api/jobs/{job}", "forged"), 403, "token_invalid")
        expect(service.get(f"{output['url']}?download=forged"), 403, "token_invalid")
        expect(service.get(f"/api/jobs/{job}", theirs.json()["session_token"]), 404,
               "job_not_found")
        expect(service.delete(f"/api/photos/{photo}", theirs.json()["session_token"]), 404,
               "photo_not_found")
        assert service.delete(f"/api/jobs/{job}", token).status == 200
        expect(service.get(f"/api/jobs/{job}", token), 404, "job_not_found")
        for session in (token, theirs.json()["session_token"]):
            assert service.delete("/api/session", session).status == 200
        expect(service.delete("/api/session", token), 403, "token_invalid")

        assert service.store_files() == []
        clean = scan(process_tree(service.pid), patterns)
        print(f"\n[bad-inputs] bytes_scanned={clean.bytes_scanned} forms={clean.by_form()}")
        assert {k: v for k, v in clean.counts.items() if v} == {}
