"""The job API in-process (Flask's test client): the upload path never touches Werkzeug's
buffering (request.data / files / get_data / form parsing), errors are JSON, results are not
cacheable. The end-to-end proofs through gunicorn are in tests/privacy/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from flask import Flask, Request
from flask.testing import FlaskClient

from appliance.config import load_config
from appliance.web.app import create_app, shutdown_app
from tests.helpers.images import encode


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, ram_dir: Path) -> Iterator[Flask]:
    def forbidden(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the upload path must read request.stream only")

    for name in ("get_data", "_load_form_data", "_get_file_stream"):
        monkeypatch.setattr(Request, name, forbidden)
    cfg = load_config(env={"EPHEMERA_STORE_PATH": str(ram_dir / "store")})
    app = create_app(cfg)
    yield app
    shutdown_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_max_content_length_is_set(app: Flask) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] >= app.extensions["ephemera.work"].max_upload_bytes


@pytest.mark.needs_models
def test_upload_status_result_delete(client: FlaskClient, app: Flask,
                                     astronaut_bgr: npt.NDArray[np.uint8],
                                     consent_headers: dict[str, str]) -> None:
    reply = client.post("/api/jobs", data=encode(astronaut_bgr, ".jpg"),
                        headers={**consent_headers, "Content-Type": "image/jpeg"})
    assert reply.status_code == 202, reply.json
    body = reply.json
    assert body is not None
    auth = {"Authorization": f"Bearer {body['session_token']}"}
    assert reply.headers["Location"] == body["status_url"]
    for _ in range(600):
        status = client.get(body["status_url"], headers=auth).json
        assert status is not None
        if status["state"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert status["state"] == "done", status
    assert status["result"]["faces"] == 1
    # The models' input and output buffers held this guest's pixels during the run; they are
    # zeroised as soon as the run ends, not only when the job is released.
    models = app.extensions["ephemera.models"]
    assert models.kinds(), "the job should have opened the models"
    for name in models.kinds():
        backend = models.get(name)
        for spec in backend.inputs:
            assert not backend.input_buffer(spec.name).any(), name
    result = client.get(body["result_url"], headers=auth)
    assert result.status_code == 200 and result.data[:3] == b"\xff\xd8\xff"
    assert result.headers["Cache-Control"] == "no-store"
    assert int(result.headers["Content-Length"]) == len(result.data)
    grant = client.post(f"/api/jobs/{body['job_id']}/download-token", headers=auth).json
    assert grant is not None and grant["single_use"] is True
    assert client.get(grant["download_url"]).status_code == 200
    again = client.get(grant["download_url"])
    assert again.status_code == 403 and again.json == {
        "error": "token_invalid", "message": again.json["message"],
        "remedy": again.json["remedy"]}
    assert reply.headers["Cache-Control"] == "no-store"
    assert client.get(body["status_url"], headers=auth).headers["Cache-Control"] == "no-store"
    deleted = client.delete(f"/api/jobs/{body['job_id']}", headers=auth)
    assert deleted.json == {"job_id": body["job_id"], "deleted": True}
    assert deleted.headers["Cache-Control"] == "no-store"
    assert client.get(body["status_url"], headers=auth).status_code == 404
    assert app.extensions["ephemera.store"].job_ids() == []


def test_refusals_are_json_and_leave_nothing(client: FlaskClient, app: Flask,
                                             consent_headers: dict[str, str]) -> None:
    consent = consent_headers
    cases = [
        ({"Content-Type": "image/jpeg"}, b"x" * 10, 400, "consent_required"),
        ({**consent, "Content-Type": "multipart/form-data; boundary=x"}, b"--x--", 415,
         "unsupported_format"),
        ({**consent, "Content-Type": "image/png"}, None, 411, "length_required"),
        ({**consent, "Content-Type": "image/png"}, b"not a png at all", 415, "not_an_image"),
    ]
    for headers, data, status, code in cases:
        reply = client.post("/api/jobs", data=data, headers=headers)
        assert (reply.status_code, (reply.json or {}).get("error")) == (status, code)
        assert reply.headers["Cache-Control"] == "no-store"
    assert client.get("/api/nothing").json["error"] == "not_found"  # type: ignore[index]
    assert client.put("/api/jobs").status_code == 405
    assert app.extensions["ephemera.store"].job_ids() == []
    assert app.extensions["ephemera.jobs"].stats()["jobs"] == 0
    assert app.extensions["ephemera.jobs"].stats()["sessions"] == 0  # no orphan sessions


@pytest.mark.needs_models
def test_a_download_link_is_spent_only_when_the_picture_is_sent(
        client: FlaskClient, app: Flask, astronaut_bgr: npt.NDArray[np.uint8],
        consent_headers: dict[str, str]) -> None:
    manager = app.extensions["ephemera.jobs"]
    with manager._models_lock:  # the worker cannot finish the job while this is held
        reply = client.post("/api/jobs", data=encode(astronaut_bgr, ".jpg"),
                            headers={**consent_headers, "Content-Type": "image/jpeg"})
        assert reply.status_code == 202, reply.json
        body = reply.json
        auth = {"Authorization": f"Bearer {body['session_token']}"}
        url = client.post(f"/api/jobs/{body['job_id']}/download-token",
                          headers=auth).json["download_url"]
        early = client.get(url)  # the QR code scanned before the picture is ready
        assert early.status_code == 409 and early.json["error"] == "not_ready"
    for _ in range(600):
        if client.get(body["status_url"], headers=auth).json["state"] in ("done", "failed"):
            break
        time.sleep(0.1)
    preview = client.head(url)  # a phone's link preview
    assert preview.status_code == 200 and preview.data == b""
    assert int(preview.headers["Content-Length"]) > 0
    result = client.get(url)
    assert result.status_code == 200 and result.data[:3] == b"\xff\xd8\xff"
    assert client.get(url).status_code == 403


@pytest.mark.needs_models
def test_delete_answers_deleted_only_after_the_wipe(
        client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch,
        astronaut_bgr: npt.NDArray[np.uint8], consent_headers: dict[str, str]) -> None:
    from appliance.secure.buffers import REGISTRY
    from appliance.web import api as api_module
    monkeypatch.setattr(api_module, "DELETE_WAIT_S", 0.5)
    manager = app.extensions["ephemera.jobs"]
    with manager._models_lock:  # the job is running and cannot finish yet
        reply = client.post("/api/jobs", data=encode(astronaut_bgr, ".jpg"),
                            headers={**consent_headers, "Content-Type": "image/jpeg"})
        body = reply.json
        auth = {"Authorization": f"Bearer {body['session_token']}"}
        for _ in range(600):  # running (waiting for the models), not queued: a queued job's
            # release would wait for this very lock
            if client.get(body["status_url"], headers=auth).json["state"] == "running":
                break
            time.sleep(0.05)
        deleting = client.delete(f"/api/jobs/{body['job_id']}", headers=auth)
        assert deleting.status_code == 202
        assert deleting.json == {"job_id": body["job_id"], "deleted": False,
                                 "state": "deleting"}
    for _ in range(600):
        if not REGISTRY.live(body["job_id"]):
            break
        time.sleep(0.05)
    assert client.get(body["status_url"], headers=auth).status_code == 404
    # A job that is not running: "deleted" means its buffers are already gone.
    reply = client.post("/api/jobs", data=encode(astronaut_bgr, ".jpg"),
                        headers={**consent_headers, "Content-Type": "image/jpeg"})
    body = reply.json
    auth = {"Authorization": f"Bearer {body['session_token']}"}
    for _ in range(600):
        if client.get(body["status_url"], headers=auth).json["state"] in ("done", "failed"):
            break
        time.sleep(0.1)
    deleted = client.delete(f"/api/jobs/{body['job_id']}", headers=auth)
    assert deleted.json == {"job_id": body["job_id"], "deleted": True}
    assert REGISTRY.live(body["job_id"]) == []
