"""The kiss video end to end through the API (Flask's test client): two photos in, an MP4 and a
poster out, read back by independent readers (PyAV, the tests' box walker, our own face
detector and mesh on the decoded frames, real Chromium), Range on the video, bad input refused,
everything released.

One video is made per module (rendering is the slow part) and every check reads it.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.config import load_config
from appliance.media.metadata import metadata_found
from appliance.secure.buffers import REGISTRY
from appliance.vision import quality
from appliance.vision.pipeline import FacePipeline
from appliance.web.app import create_app, shutdown_app
from tests import mp4_reader
from tests.helpers.images import astronaut_bgr, encode, two_faces

pytestmark = [pytest.mark.needs_models, pytest.mark.slow]

CONSENT = {"X-Ephemera-Consent": "adults-consenting"}
DURATION, FPS = 3, 24
FRAMES = DURATION * FPS


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client: FlaskClient, data: bytes, token: str | None = None,
           query: str = "effect=kiss") -> Any:
    headers = {**CONSENT, "Content-Type": "image/jpeg", **(auth(token) if token else {})}
    return client.post(f"/api/photos?{query}", data=data, headers=headers)


def start(client: FlaskClient, token: str, body: Any) -> Any:
    return client.post("/api/jobs", data=json.dumps(body).encode(),
                       headers={"Content-Type": "application/json", **auth(token)})


def wait(client: FlaskClient, url: str, token: str) -> dict[str, Any]:
    for _ in range(3000):
        status = client.get(url, headers=auth(token)).json
        assert status is not None
        if status["state"] in ("done", "failed"):
            return dict(status)
        time.sleep(0.1)
    raise AssertionError("the kiss job did not finish in 5 minutes")


def fetch(client: FlaskClient, url: str, headers: dict[str, str]) -> tuple[Any, bytes]:
    """A response and its body, copied chunk by chunk as a server sends them: the service
    refills one chunk buffer in place (tests/web/test_delivery.py), so collecting references
    to the chunks first, as the test client's ``.data`` does, would repeat the last one."""
    reply = client.get(url, headers=headers, buffered=False)
    try:
        body = b"".join(bytes(bytearray(chunk)) for chunk in reply.response)
    finally:
        reply.close()
    return reply, body


def error(reply: Any) -> tuple[int, str]:
    body = reply.json or {}
    assert body.get("message") and body.get("remedy"), body
    return reply.status_code, body["error"]


@pytest.fixture(scope="module")
def app() -> Iterator[Flask]:
    store = Path("/dev/shm") / f"ephemera-kiss-{secrets.token_hex(6)}"
    cfg = load_config(env={"EPHEMERA_STORE_PATH": str(store / "store")})
    app = create_app(cfg)
    yield app
    shutdown_app(app)
    shutil.rmtree(store, ignore_errors=True)


@pytest.fixture(scope="module")
def made(app: Flask) -> dict[str, Any]:
    """One kiss from two photos (the astronaut and her mirror image), and its outputs."""
    client = app.test_client()
    first = upload(client, encode(astronaut_bgr(), ".jpg"))
    assert first.status_code == 201, first.json
    token = first.json["session_token"]
    mirrored = np.ascontiguousarray(astronaut_bgr()[:, ::-1])
    second = upload(client, encode(mirrored, ".jpg"), token)
    assert second.status_code == 201, second.json
    job = start(client, token, {"effect": "kiss",
                                "photos": [first.json["photo_id"], second.json["photo_id"]],
                                "params": {"duration": DURATION}})
    assert job.status_code == 202, job.json
    status = wait(client, job.json["status_url"], token)
    assert status["state"] == "done", status
    outputs = {o["name"]: o for o in status["outputs"]}
    video, data = fetch(client, outputs["kiss.mp4"]["url"], auth(token))
    poster, poster_data = fetch(client, outputs["poster.jpg"]["url"], auth(token))
    return {"client": client, "token": token, "status": status, "outputs": outputs,
            "video": video, "poster": poster, "data": data, "poster_data": poster_data}


@pytest.fixture(scope="module")
def frames(made: dict[str, Any]) -> list[np.ndarray]:
    with av.open(io.BytesIO(made["data"])) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def test_outputs_are_declared_ready_and_served_as_video(made: dict[str, Any]) -> None:
    assert set(made["outputs"]) == {"kiss.mp4", "poster.jpg"}
    assert all(o["ready"] for o in made["outputs"].values())
    video = made["video"]
    assert video.status_code == 200
    assert video.headers["Content-Type"] == "video/mp4"
    assert video.headers["Accept-Ranges"] == "bytes"
    assert video.headers["Cache-Control"] == "no-store"
    assert len(made["data"]) == made["outputs"]["kiss.mp4"]["bytes"]


def test_the_mp4_is_h264_high_yuv420p_faststart_with_every_frame(made: dict[str, Any],
                                                                 frames: list) -> None:
    data = made["data"]
    top = [box.kind for box in mp4_reader.walk(data)]
    assert top[0] == "ftyp" and top.index("moov") < top.index("mdat"), top
    samples = mp4_reader.samples(data)
    assert len(samples) == FRAMES
    for offset, size in samples:
        assert set(mp4_reader.nal_units(data, offset, size)) & {1, 5}
    assert metadata_found(memoryview(data), "video/mp4") == []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        assert (context.name, context.profile, context.pix_fmt) == ("h264", "High", "yuv420p")
        assert min(context.width, context.height) >= 720
        assert stream.average_rate == Fraction(FPS)
        assert float(stream.duration * stream.time_base) == pytest.approx(DURATION, abs=1e-3)
    assert len(frames) == FRAMES


def test_no_frozen_frames(frames: list) -> None:
    for index in range(1, len(frames)):
        change = np.abs(frames[index].astype(np.int16) - frames[index - 1]).mean()
        assert change > 0.05, f"frame {index} repeats frame {index - 1}"


def _faces(pipeline: FacePipeline, frame: np.ndarray, owner: str) -> list:
    return sorted(pipeline.detect(np.ascontiguousarray(frame), owner, mesh=True),
                  key=lambda f: f.box[0])


def _centre(face: Any) -> np.ndarray:
    return np.array([(face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2])


def test_two_faces_with_open_eyes_then_closer_then_closed(frames: list, pipeline: FacePipeline,
                                                          owner: str) -> None:
    first = _faces(pipeline, frames[0], owner)
    assert len(first) == 2, "our detector finds both people in the first frame"
    open_ear = [float(np.mean(quality.eye_openness(f.mesh))) for f in first]
    assert min(open_ear) > quality.MIN_EYE_OPENNESS

    distances = []
    for index in (0, FRAMES // 4, FRAMES // 2):
        found = _faces(pipeline, frames[index], owner)
        assert len(found) == 2, f"frame {index}"
        distances.append(float(np.linalg.norm(_centre(found[0]) - _centre(found[1]))))
    assert distances[0] > distances[1] > distances[2], distances
    assert distances[2] < 0.8 * distances[0]

    # The eyes close over 0.4 s from 40 % of the video. Our mesh reads a turned face's eyes
    # as more open than a frontal one's, so each face is compared with itself just before its
    # eyes start to close (nearly the same pose): the eye aspect ratio falls clearly, and it
    # stays down to the last frame.
    before = _ear_by_side(pipeline, frames[int(0.40 * DURATION * FPS)], owner)
    closed = _ear_by_side(pipeline, frames[round((0.40 * DURATION + 0.5) * FPS)], owner)
    last = _ear_by_side(pipeline, frames[-1], owner)
    for side in (0, 1):
        assert closed[side] < 0.9 * before[side], (before, closed)
        assert closed[side] < open_ear[side], (open_ear, closed)
    assert last, "the faces are still found at the end"
    assert all(value < max(open_ear) for value in last.values()), (open_ear, last)


def _ear_by_side(pipeline: FacePipeline, frame: np.ndarray, owner: str) -> dict[int, float]:
    """Mean eye aspect ratio of the face on the left (0) and on the right (1) of the frame."""
    found = _faces(pipeline, frame, owner)
    middle = frame.shape[1] / 2
    return {int(_centre(face)[0] > middle): float(np.mean(quality.eye_openness(face.mesh)))
            for face in found}


def test_range_requests_return_exactly_the_bytes(made: dict[str, Any]) -> None:
    client, token, data = made["client"], made["token"], made["data"]
    url, size = made["outputs"]["kiss.mp4"]["url"], len(made["data"])
    for asked, (begin, stop) in (("bytes=0-1", (0, 2)), ("bytes=0-65535", (0, 65536)),
                                 (f"bytes={size // 2}-", (size // 2, size)),
                                 ("bytes=-500", (size - 500, size)),
                                 (f"bytes=1000-{size + 99}", (1000, size))):
        part, body = fetch(client, url, {**auth(token), "Range": asked})
        assert part.status_code == 206, asked
        assert body == data[begin:stop], asked
        assert part.headers["Content-Range"] == f"bytes {begin}-{stop - 1}/{size}"
        assert part.headers["Content-Type"] == "video/mp4"
        assert part.headers["Cache-Control"] == "no-store"


def test_poster_is_a_clean_jpeg_of_the_frame_size(made: dict[str, Any]) -> None:
    poster = made["poster_data"]
    assert made["poster"].headers["Content-Type"] == "image/jpeg"
    assert poster[:3] == b"\xff\xd8\xff"
    assert metadata_found(memoryview(poster), "image/jpeg") == []
    import cv2

    image = cv2.imdecode(np.frombuffer(poster, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (720, 1280, 3)


@pytest.mark.browser
def test_the_video_plays_to_the_end_in_chromium(made: dict[str, Any]) -> None:
    """Debian's Chromium (system FFmpeg, so H.264) plays it through, asking with Range."""
    from playwright.sync_api import Route, sync_playwright

    data = made["data"]
    ranges: list[str] = []

    def serve(route: Route) -> None:
        if route.request.url.endswith("/"):
            route.fulfill(status=200, content_type="text/html",
                          body="<video id=v muted playsinline src='/kiss.mp4'></video>")
            return
        asked = route.request.headers.get("range")
        if not asked:
            route.fulfill(status=200, body=data, headers={"Content-Type": "video/mp4",
                                                          "Accept-Ranges": "bytes"})
            return
        ranges.append(asked)
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", asked)
        assert match, asked
        begin = int(match.group(1))
        stop = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
        route.fulfill(status=206, body=data[begin:stop + 1], headers={
            "Content-Type": "video/mp4", "Accept-Ranges": "bytes",
            "Content-Range": f"bytes {begin}-{stop}/{len(data)}"})

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page()
            page.route("http://booth.test/**", serve)  # nothing leaves the machine
            page.goto("http://booth.test/")
            support = page.evaluate(
                "() => document.createElement('video')"
                ".canPlayType('video/mp4; codecs=\"avc1.640028\"')")
            assert support == "probably", "this Chromium cannot play H.264 High"
            result = page.evaluate("""() => new Promise(done => {
                const v = document.getElementById('v');
                v.onended = () => done({ended: true, duration: v.duration,
                                        width: v.videoWidth, height: v.videoHeight});
                v.onerror = () => done({error: v.error ? v.error.code : -1});
                v.play().catch(e => done({error: String(e)}));
                setTimeout(() => done({timeout: v.currentTime}), 30000);
            })""")
        finally:
            browser.close()
    assert result.get("ended") is True, result
    assert result["duration"] == pytest.approx(DURATION, abs=0.05)
    assert (result["width"], result["height"]) == (1280, 720)
    assert ranges, "Chromium asked for byte ranges"


def test_deleting_the_job_releases_everything(app: Flask, made: dict[str, Any]) -> None:
    client, token, job_id = made["client"], made["token"], made["status"]["job_id"]
    assert client.delete(f"/api/jobs/{job_id}", headers=auth(token)).status_code == 200
    assert REGISTRY.live(job_id) == []
    assert job_id not in app.extensions["ephemera.store"].job_ids()


def test_bad_input_is_refused_clearly_and_nothing_is_kept(app: Flask) -> None:
    from tests.helpers.images import no_face
    from tests.helpers.memscan import Canary

    client = app.test_client()
    store = app.extensions["ephemera.store"]
    before = set(store.job_ids())
    one = upload(client, encode(astronaut_bgr(), ".jpg"))
    assert one.status_code == 201
    token = one.json["session_token"]
    # One photo holding one face: the kiss needs two people.
    assert error(start(client, token, {"effect": "kiss", "photos": [one.json["photo_id"]]})) \
        == (422, "too_few_faces")
    three = np.ascontiguousarray(np.concatenate([two_faces(), astronaut_bgr()], axis=1))
    assert error(upload(client, encode(three, ".jpg"), token)) == (422, "too_many_faces")
    empty = no_face(Canary.random(seed=5))
    assert error(upload(client, encode(empty, ".jpg"), token)) == (422, "no_face")
    assert error(start(client, token, {"effect": "kiss", "photos": [one.json["photo_id"]],
                                       "params": {"duration": 9}})) == (400, "bad_param")
    assert error(start(client, token, {"effect": "kiss", "photos": [one.json["photo_id"]],
                                       "params": {"side": "middle"}})) == (400, "bad_param")
    assert client.delete("/api/session", headers=auth(token)).status_code == 200
    assert set(store.job_ids()) == before
    assert REGISTRY.live(one.json["photo_id"]) == []


def test_one_photo_with_both_people(app: Flask, pipeline: FacePipeline, owner: str) -> None:
    """Both people from one photo: each cut out on their side of the line between them."""
    client = app.test_client()
    pair = upload(client, encode(two_faces(), ".jpg"))
    assert pair.status_code == 201 and len(pair.json["faces"]) == 2, pair.json
    token = pair.json["session_token"]
    job = start(client, token, {"effect": "kiss", "photos": [pair.json["photo_id"]],
                                "params": {"duration": 3, "side": "right"}})
    assert job.status_code == 202, job.json
    status = wait(client, job.json["status_url"], token)
    assert status["state"] == "done", status
    url = next(o["url"] for o in status["outputs"] if o["name"] == "kiss.mp4")
    _reply, data = fetch(client, url, auth(token))
    with av.open(io.BytesIO(data)) as container:
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(decoded) == FRAMES
    assert len(_faces(pipeline, decoded[0], owner)) == 2
    assert client.delete("/api/session", headers=auth(token)).status_code == 200
    assert REGISTRY.live(status["job_id"]) == [] and REGISTRY.live(pair.json["photo_id"]) == []
