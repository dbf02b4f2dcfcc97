"""The booth's API in-process (Flask's test client): photos, effect jobs, outputs with Range,
deletes, and the refusals. The upload path never touches Werkzeug's buffering (request.data /
files / get_data / form parsing), errors are JSON, nothing is cacheable. The end-to-end proofs
through gunicorn are in tests/privacy/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Request
from flask.testing import FlaskClient

from appliance.config import load_config
from appliance.media.metadata import metadata_found
from appliance.secure.buffers import REGISTRY
from appliance.web.app import create_app, shutdown_app
from tests.helpers.images import astronaut_bgr, encode, two_faces

CONSENT = {"X-Ephemera-Consent": "adults-consenting"}


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, ram_dir: Path) -> Iterator[Flask]:
    def forbidden(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the API must read request.stream only")

    for name in ("get_data", "_load_form_data", "_get_file_stream"):
        monkeypatch.setattr(Request, name, forbidden)
    cfg = load_config(env={"EPHEMERA_STORE_PATH": str(ram_dir / "store")})
    app = create_app(cfg)
    yield app
    shutdown_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client: FlaskClient, data: bytes, token: str | None = None, query: str = "",
           content_type: str = "image/jpeg") -> Any:
    headers = {**CONSENT, "Content-Type": content_type, **(auth(token) if token else {})}
    return client.post("/api/photos" + (f"?{query}" if query else ""), data=data,
                       headers=headers)


def start(client: FlaskClient, token: str | None, body: Any) -> Any:
    headers = {"Content-Type": "application/json", **(auth(token) if token else {})}
    return client.post("/api/jobs", data=json.dumps(body).encode(), headers=headers)


def wait(client: FlaskClient, url: str, token: str) -> dict[str, Any]:
    for _ in range(600):
        status = client.get(url, headers=auth(token)).json
        assert status is not None
        if status["state"] in ("done", "failed"):
            return dict(status)
        time.sleep(0.1)
    raise AssertionError("the job did not finish")


def error(reply: Any) -> tuple[int, str]:
    body = reply.json or {}
    assert body.get("message") and body.get("remedy"), body
    assert reply.headers["Cache-Control"] == "no-store"
    return reply.status_code, body["error"]


def test_max_content_length_is_set(app: Flask) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] >= app.extensions["ephemera.work"].max_upload_bytes


def test_effects_are_listed_from_the_registry(client: FlaskClient) -> None:
    from appliance.effects.registry import effects

    listed = client.get("/api/effects").json
    assert listed is not None
    assert [e["key"] for e in listed["effects"]] == sorted(effects())
    faces = next(e for e in listed["effects"] if e["key"] == "faces")
    assert faces["outputs"][0]["media_type"] == "image/jpeg"
    assert {"name", "kind", "default", "help"} <= set(faces["params"][0])


@pytest.mark.needs_models
def test_photo_job_outputs_with_range_then_deletes(client: FlaskClient, app: Flask) -> None:
    photo = upload(client, encode(astronaut_bgr(), ".jpg"))
    assert photo.status_code == 201, photo.json
    body = photo.json
    token, photo_id = body["session_token"], body["photo_id"]
    assert (body["width"], body["height"], len(body["faces"])) == (512, 512, 1)
    assert photo.headers["Location"] == body["url"]
    assert client.get(body["url"], headers=auth(token)).json["photo_id"] == photo_id

    job = start(client, token, {"effect": "faces", "photos": [photo_id]})
    assert job.status_code == 202, job.json
    assert job.json["outputs"][0]["name"] == "result.jpg"
    assert job.json["outputs"][0]["ready"] in (False, True)
    status = wait(client, job.json["status_url"], token)
    assert status["state"] == "done", status
    assert status["effect"] == "faces" and status["photos"] == [photo_id]
    [output] = status["outputs"]
    assert output["ready"] is True and output["media_type"] == "image/jpeg"
    # The models' buffers held this guest's pixels during the run: zeroised when it ended.
    models = app.extensions["ephemera.models"]
    for name in models.kinds():
        backend = models.get(name)
        for spec in backend.inputs:
            assert not backend.input_buffer(spec.name).any(), name

    whole = client.get(output["url"], headers=auth(token))
    assert whole.status_code == 200 and whole.data[:3] == b"\xff\xd8\xff"
    assert int(whole.headers["Content-Length"]) == len(whole.data) == output["bytes"]
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Cache-Control"] == "no-store"
    assert metadata_found(memoryview(whole.data), "image/jpeg") == []
    size = len(whole.data)
    for asked, (start_at, stop) in (("bytes=0-99", (0, 100)), ("bytes=-10", (size - 10, size)),
                                    (f"bytes={size - 5}-", (size - 5, size)),
                                    (f"bytes=100-{size + 50}", (100, size))):
        part = client.get(output["url"], headers={**auth(token), "Range": asked})
        assert part.status_code == 206, asked
        assert part.data == whole.data[start_at:stop], asked
        assert part.headers["Content-Range"] == f"bytes {start_at}-{stop - 1}/{size}"
        assert int(part.headers["Content-Length"]) == stop - start_at
    # HEAD (a link preview, a player probing) answers the same headers and decrypts nothing.
    held = len(REGISTRY.live(status["job_id"]))
    head = client.head(output["url"], headers={**auth(token), "Range": "bytes=0-99"})
    assert (head.status_code, head.data) == (206, b"")
    assert head.headers["Content-Length"] == "100"
    assert head.headers["Content-Range"] == f"bytes 0-99/{size}"
    assert len(REGISTRY.live(status["job_id"])) == held
    beyond = client.get(output["url"], headers={**auth(token), "Range": f"bytes={size}-"})
    assert error(beyond) == (416, "range_not_satisfiable")
    assert beyond.headers["Content-Range"] == f"bytes */{size}"
    assert error(client.get(f"/api/jobs/{status['job_id']}/outputs/nothing.jpg",
                            headers=auth(token))) == (404, "output_not_found")

    grant = client.post(f"/api/jobs/{status['job_id']}/download-token", headers=auth(token))
    assert grant.json["single_use"] is True and grant.json["output"] == "result.jpg"
    # A link preview (HEAD) and a refused range leave the one-time link valid.
    assert client.head(grant.json["download_url"]).status_code == 200
    assert client.get(grant.json["download_url"],
                      headers={"Range": f"bytes={size}-"}).status_code == 416
    assert client.get(grant.json["download_url"]).data == whole.data
    assert error(client.get(grant.json["download_url"])) == (403, "token_invalid")

    deleted = client.delete(f"/api/jobs/{status['job_id']}", headers=auth(token))
    assert deleted.json == {"job_id": status["job_id"], "deleted": True}
    assert error(client.get(job.json["status_url"], headers=auth(token))) == (404,
                                                                             "job_not_found")
    assert REGISTRY.live(status["job_id"]) == []
    store = app.extensions["ephemera.store"]
    assert store.job_ids() == [photo_id]  # the photo stays for another effect
    assert client.delete(body["url"], headers=auth(token)).json["deleted"] is True
    assert store.job_ids() == [] and REGISTRY.live(photo_id) == []
    assert error(client.get(body["url"], headers=auth(token))) == (404, "photo_not_found")


@pytest.mark.needs_models
def test_the_session_delete_wipes_everything_and_photos_stay_in_their_session(
        client: FlaskClient, app: Flask) -> None:
    mine = upload(client, encode(astronaut_bgr(), ".jpg")).json
    token = mine["session_token"]
    pair = upload(client, encode(two_faces(), ".jpg"), token=token, query="faces=2")
    assert pair.status_code == 201 and len(pair.json["faces"]) == 2
    assert "session_token" not in pair.json
    theirs = upload(client, encode(astronaut_bgr(), ".png"), content_type="image/png").json
    other = theirs["session_token"]

    # Another session's photo is "not found" wherever it is named (no IDOR).
    for reply in (start(client, other, {"effect": "faces", "photos": [mine["photo_id"]]}),
                  client.get(mine["url"], headers=auth(other)),
                  client.delete(mine["url"], headers=auth(other))):
        assert error(reply) == (404, "photo_not_found")
    # Faces per photo are checked against the effect before anything is queued.
    wrong = start(client, token, {"effect": "faces", "photos": [pair.json["photo_id"]]})
    assert error(wrong) == (422, "too_many_faces")
    job = start(client, token, {"effect": "faces", "photos": [pair.json["photo_id"]],
                                "params": {"faces": 2}})
    assert job.status_code == 202, job.json
    assert wait(client, job.json["status_url"], token)["state"] == "done"

    gone = client.delete("/api/session", headers=auth(token))
    assert gone.json == {"deleted": True, "jobs": 1, "photos": 2}
    assert error(client.get(job.json["status_url"], headers=auth(token))) == (403,
                                                                             "token_invalid")
    assert app.extensions["ephemera.store"].job_ids() == [theirs["photo_id"]]
    for owner in (mine["photo_id"], pair.json["photo_id"], job.json["job_id"]):
        assert REGISTRY.live(owner) == []
    assert client.get(theirs["url"], headers=auth(other)).status_code == 200


@pytest.mark.needs_models
def test_job_requests_are_checked_before_anything_is_queued(client: FlaskClient,
                                                            app: Flask) -> None:
    photo = upload(client, encode(astronaut_bgr(), ".jpg")).json
    token, pid = photo["session_token"], photo["photo_id"]
    second = upload(client, encode(astronaut_bgr(), ".png"), token=token,
                    content_type="image/png").json["photo_id"]
    headers = {**auth(token), "Content-Type": "application/json"}
    cases = [
        (start(client, None, {"effect": "faces", "photos": [pid]}), (401, "token_required")),
        (start(client, "forged", {"effect": "faces", "photos": [pid]}), (403, "token_invalid")),
        (client.post("/api/jobs", data=b"x", headers={**auth(token),
                                                      "Content-Type": "image/jpeg"}),
         (415, "unsupported_format")),
        (client.post("/api/jobs", data=b"{nope", headers=headers), (400, "bad_job_request")),
        (client.post("/api/jobs", data=b"[]", headers=headers), (400, "bad_job_request")),
        (client.post("/api/jobs", data=b" " * 20_000, headers=headers),
         (413, "too_many_bytes")),
        (start(client, token, {"effect": "faces", "photos": [pid], "x": 1}),
         (400, "bad_job_request")),
        (start(client, token, {"effect": "karaoke", "photos": [pid]}), (400, "unknown_effect")),
        (start(client, token, {"effect": "faces", "photos": []}), (400, "bad_job_request")),
        (start(client, token, {"effect": "faces", "photos": [pid, pid]}),
         (400, "duplicate_photo")),
        (start(client, token, {"effect": "faces", "photos": [pid, second]}),
         (400, "wrong_photo_count")),
        (start(client, token, {"effect": "faces", "photos": ["nope"]}),
         (404, "photo_not_found")),
        (start(client, token, {"effect": "faces", "photos": [pid], "params": {"faces": "²"}}),
         (400, "bad_param")),
        (start(client, token, {"effect": "faces", "photos": [pid], "params": {"zoom": 2}}),
         (400, "bad_param")),
    ]
    for reply, expected in cases:
        assert error(reply) == expected, reply.json
    manager = app.extensions["ephemera.jobs"]
    assert manager.stats()["jobs"] == 0 and manager.stats()["sessions"] == 1


def test_photo_refusals_are_json_and_leave_nothing(client: FlaskClient, app: Flask) -> None:
    cases = [
        ({"Content-Type": "image/jpeg"}, b"x" * 10, 400, "consent_required"),
        ({**CONSENT, "Content-Type": "multipart/form-data; boundary=x"}, b"--x--", 415,
         "unsupported_format"),
        ({**CONSENT, "Content-Type": "image/png"}, None, 411, "length_required"),
        ({**CONSENT, "Content-Type": "image/png"}, b"not a png at all", 415, "not_an_image"),
    ]
    for headers, data, status, code in cases:
        reply = client.post("/api/photos", data=data, headers=headers)
        assert (reply.status_code, (reply.json or {}).get("error")) == (status, code)
        assert reply.headers["Cache-Control"] == "no-store"
    assert error(upload(client, b"x", query="effect=karaoke")) == (400, "unknown_effect")
    assert error(upload(client, b"x", query="faces=3")) == (400, "bad_faces")
    assert error(client.delete("/api/session")) == (401, "token_required")
    assert client.get("/api/nothing").json["error"] == "not_found"  # type: ignore[index]
    assert client.put("/api/jobs").status_code == 405
    assert app.extensions["ephemera.store"].job_ids() == []
    stats = app.extensions["ephemera.jobs"].stats()
    assert (stats["jobs"], stats["photos"], stats["sessions"]) == (0, 0, 0)


@pytest.mark.needs_models
def test_a_download_link_is_spent_only_when_the_picture_is_sent(client: FlaskClient,
                                                                 app: Flask) -> None:
    photo = upload(client, encode(astronaut_bgr(), ".jpg")).json
    token = photo["session_token"]
    manager = app.extensions["ephemera.jobs"]
    with manager._models_lock:  # the worker cannot finish the job while this is held
        job = start(client, token, {"effect": "faces", "photos": [photo["photo_id"]]}).json
        url = client.post(f"/api/jobs/{job['job_id']}/download-token",
                          headers=auth(token)).json["download_url"]
        early = client.get(url)  # the QR code scanned before the picture is ready
        assert early.status_code == 409 and early.json["error"] == "not_ready"
    assert wait(client, job["status_url"], token)["state"] == "done"
    assert client.get(url).status_code == 200
    assert error(client.get(url)) == (403, "token_invalid")


@pytest.mark.needs_models
def test_delete_answers_deleted_only_after_the_wipe(client: FlaskClient, app: Flask,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.web import api as api_module
    monkeypatch.setattr(api_module, "DELETE_WAIT_S", 0.5)
    photo = upload(client, encode(astronaut_bgr(), ".jpg")).json
    token = photo["session_token"]
    manager = app.extensions["ephemera.jobs"]
    with manager._models_lock:  # the job is running and cannot finish yet
        job = start(client, token, {"effect": "faces", "photos": [photo["photo_id"]]}).json
        for _ in range(600):  # running, not queued: a queued job's release takes this lock
            if client.get(job["status_url"], headers=auth(token)).json["state"] == "running":
                break
            time.sleep(0.05)
        deleting = client.delete(f"/api/jobs/{job['job_id']}", headers=auth(token))
        assert deleting.status_code == 202
        assert deleting.json == {"job_id": job["job_id"], "deleted": False,
                                 "state": "deleting"}
    for _ in range(600):
        if not REGISTRY.live(job["job_id"]):
            break
        time.sleep(0.05)
    assert client.get(job["status_url"], headers=auth(token)).status_code == 404
    # A job that is not running: "deleted" means its buffers are already gone.
    job = start(client, token, {"effect": "faces", "photos": [photo["photo_id"]]}).json
    wait(client, job["status_url"], token)
    deleted = client.delete(f"/api/jobs/{job['job_id']}", headers=auth(token))
    assert deleted.json == {"job_id": job["job_id"], "deleted": True}
    assert REGISTRY.live(job["job_id"]) == []
