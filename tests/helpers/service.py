"""Start the real service (``python -m appliance serve`` under gunicorn) for end-to-end tests.

Each service gets a free port, a fresh RAM store under /dev/shm/<random>, no bytecode writing
and, optionally, a wrapper command (strace). The HTTP helpers use http.client on 127.0.0.1 so a
test talks to the service exactly as a browser would.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.booth_env import booth_environ

REPO = Path(__file__).resolve().parents[2]
CONSENT = {"X-Ephemera-Consent": "adults-consenting"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Service:
    port: int
    store: Path
    proc: subprocess.Popen[str]
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 120) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                         data)
        finally:
            conn.close()

    def upload(self, data: bytes, content_type: str = "image/png", token: str | None = None,
               query: str = "", consent: bool = True) -> Reply:
        """POST /api/photos: the photo is decoded and gated now (201 or the gate's 422)."""
        headers = {"Content-Type": content_type, **(CONSENT if consent else {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.request("POST", "/api/photos" + (f"?{query}" if query else ""), data,
                            headers)

    def start_job(self, token: str | None, photos: list[str], effect: str = "faces",
                  params: dict[str, Any] | None = None) -> Reply:
        """POST /api/jobs: an effect job on photos of the session."""
        body = json.dumps({"effect": effect, "photos": photos, "params": params or {}})
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.request("POST", "/api/jobs", body.encode(), headers)

    def photo_job(self, data: bytes, content_type: str = "image/png", token: str | None = None,
                  effect: str = "faces", params: dict[str, Any] | None = None,
                  query: str = "") -> tuple[str, str, str]:
        """Upload a photo and start an effect job on it: (photo id, job id, session token)."""
        photo = self.upload(data, content_type, token=token, query=query)
        assert photo.status == 201, photo.body
        token = token or photo.json()["session_token"]
        job = self.start_job(token, [photo.json()["photo_id"]], effect, params)
        assert job.status == 202, job.body
        return photo.json()["photo_id"], job.json()["job_id"], token

    def get(self, path: str, token: str | None = None,
            headers: dict[str, str] | None = None) -> Reply:
        sent = {"Authorization": f"Bearer {token}"} if token else {}
        return self.request("GET", path, headers={**sent, **(headers or {})})

    def delete(self, path: str, token: str | None) -> Reply:
        return self.request("DELETE", path,
                            headers={"Authorization": f"Bearer {token}"} if token else {})

    def wait_for_job(self, job_id: str, token: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.get(f"/api/jobs/{job_id}", token).json()
            if status["state"] in ("done", "failed"):
                if status.get("error", {}).get("error") == "models_unavailable":
                    raise AssertionError("the reference models are not built (or are stale): "
                                         "run `make models` first\n" + str(status["error"]))
                return dict(status)
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s")

    def store_files(self) -> list[Path]:
        return [p for p in self.store.rglob("*") if p.is_file()] if self.store.exists() else []

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _wait_ready(service: Service, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            raise AssertionError("service exited at start-up:\n" + service.output())
        try:
            if service.get("/healthz").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("service did not answer in time:\n" + service.output())


def service_env(port: int, store: Path, memfd_secret: bool, base: dict[str, str] | None = None,
                **extra: str) -> dict[str, str]:
    """``base`` (default: this process's environment less CI variables) plus the test's own."""
    env = {k: v for k, v in (booth_environ() if base is None else base).items()
           if not k.startswith("EPHEMERA_")}
    env.update({
        "EPHEMERA_KIOSK_PORT": str(port),
        "EPHEMERA_STORE_PATH": str(store),
        "EPHEMERA_SECURE_MEMFD_SECRET": "1" if memfd_secret else "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(REPO),
        # The deletion-receipt key beside the store (never in it), made at first start.
        "EPHEMERA_KIOSK_RECEIPT_KEY": str(store.parent / "receipt-key.pem"),
    })
    env.update(extra)
    return env


def start(tmp_path: Path, *, memfd_secret: bool = False, wrapper: Sequence[str] = (),
          store: Path | None = None, env: dict[str, str] | None = None,
          ready_timeout: float = 90, base_env: dict[str, str] | None = None) -> Service:
    port = free_port()
    if store is None:
        store = Path("/dev/shm") / f"ephemera-test-{secrets.token_hex(6)}" / "store"
    log = tmp_path / f"service-{port}.log"
    handle = open(log, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [*wrapper, sys.executable, "-m", "appliance", "serve"], cwd=REPO,
        env=service_env(port, store, memfd_secret, base_env, **(env or {})), stdout=handle,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    handle.close()
    service = Service(port, store, proc, log)
    try:
        _wait_ready(service, ready_timeout)
    except BaseException:
        stop(service)
        raise
    return service


def stop(service: Service, *, hard: bool = False) -> None:
    """SIGTERM (graceful: the worker releases every job) or SIGKILL of the whole group."""
    if service.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.proc.pid, signal.SIGKILL if hard else signal.SIGTERM)
        try:
            service.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(service.proc.pid, signal.SIGKILL)
            service.proc.wait(timeout=30)


def stop_and_sweep(service: Service) -> list[Path]:
    """Stop gracefully, then remove the store's tmpfs folder; returns the files the service
    left in its store (a proof asserts there are none)."""
    stop(service)
    leftovers = service.store_files()
    remove_store(service.store)
    return leftovers


def remove_store(store: Path) -> None:
    shutil.rmtree(store.parent, ignore_errors=True)


@contextlib.contextmanager
def running(tmp_path: Path, **kwargs: Any) -> Iterator[Service]:
    service = start(tmp_path, **kwargs)
    try:
        yield service
    finally:
        stop(service)
        remove_store(service.store)
