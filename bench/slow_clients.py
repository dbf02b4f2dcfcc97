"""What 50 slow clients cost everyone else: p95 of /healthz and of a normal 12-megapixel upload
(POST /api/photos: read, decoded and face-gated, to its 201)
with and without 50 slow connections held open (25 trickling request heads, 25 trickling
bodies; each reopened as soon as the server drops it), in the same run, against the same
service. ``--stock`` runs the same against plain gunicorn gthread (4 threads) for comparison.

Run: PYTHONPATH=. python bench/slow_clients.py [--stock] [--health 100] [--uploads 10]
Needs the reference models (`ephemera build`). Prints a Markdown table for BENCHMARKS.md.
Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from skimage import data as skdata

from tests.helpers import service as svc

SLOW_HEADS = 25
SLOW_BODIES = 25
TIMEOUT_S = 10.0  # /healthz
UPLOAD_TIMEOUT_S = 60.0  # a 12 MP upload on a busy 2-core machine
GIVE_UP_AFTER = 3  # consecutive timeouts: the server is down for this client, stop asking


def twelve_megapixel_jpeg() -> bytes:
    """4000 x 3000 with a face and a phone camera's sensor noise (a few MB, like a real photo)."""
    face = cv2.resize(np.ascontiguousarray(skdata.astronaut()[:, :, ::-1]), (3000, 3000))
    canvas = np.full((3000, 4000, 3), 90, np.uint8)
    canvas[:, 500:3500] = face
    noise = np.random.default_rng(0).normal(0, 6, canvas.shape)
    canvas = np.clip(canvas + noise, 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return encoded.tobytes()


class SlowClients:
    """Keeps ``heads`` + ``bodies`` slow connections open, reopening any the server drops.

    In a process of its own, so the slow clients never compete with the measuring client for
    this interpreter's lock: what is measured is the server.
    """

    def __init__(self, port: int, heads: int, bodies: int) -> None:
        self.port, self.heads, self.bodies = port, heads, bodies
        self.stop = multiprocessing.Event()
        self._reopened = multiprocessing.Value("i", 0)
        self.thread = multiprocessing.Process(target=self._run, daemon=True)

    @property
    def reopened(self) -> int:
        return int(self._reopened.value)

    def _open(self, body: bool) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            if body:
                sock.sendall(b"POST /api/photos HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg"
                             b"\r\nX-Ephemera-Consent: adults-consenting\r\n"
                             b"Content-Length: 68052\r\n\r\n" + b"\xff" * 1000)
            else:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            sock.setblocking(False)
            return sock
        except OSError:
            return None

    def _run(self) -> None:
        conns: list[tuple[socket.socket | None, bool]] = (
            [(self._open(False), False) for _ in range(self.heads)]
            + [(self._open(True), True) for _ in range(self.bodies)])
        tick = 0
        while not self.stop.wait(0.5):
            tick += 1
            for index, (sock, body) in enumerate(conns):
                alive = sock is not None
                if alive and sock is not None:
                    with contextlib.suppress(BlockingIOError):
                        try:
                            if sock.recv(65536) == b"":
                                alive = False
                        except OSError as exc:
                            if not isinstance(exc, BlockingIOError):
                                alive = False
                    if alive and tick % 4 == 0:  # every 2 s: one header line or 10 bytes
                        try:
                            sock.send(b"\xff" * 10 if body else b"X-Slow: %d\r\n" % tick)
                        except BlockingIOError:
                            pass
                        except OSError:
                            alive = False
                if not alive:
                    if sock is not None:
                        sock.close()
                    conns[index] = (self._open(body), body)
                    with self._reopened.get_lock():
                        self._reopened.value += 1
        for sock, _body in conns:
            if sock is not None:
                sock.close()

    def __enter__(self) -> SlowClients:
        self.thread.start()
        time.sleep(2.0)  # all of them connected and part-way through a request
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _request(port: int, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None, timeout: float = TIMEOUT_S
             ) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def _upload(port: int, photo: bytes, reply: dict[str, Any]) -> None:
    status, body = _request(port, "POST", "/api/photos", photo, {
        "Content-Type": "image/jpeg", **svc.CONSENT}, timeout=UPLOAD_TIMEOUT_S)
    if status != 201:
        raise OSError(f"upload answered {status}: {body[:200]!r}")
    reply.update(json.loads(body))


def _timed(fn: Any) -> float | None:
    started = time.perf_counter()
    try:
        fn()
    except OSError:
        return None  # timed out or refused: counted, not averaged
    return (time.perf_counter() - started) * 1000


def measure(port: int, photo: bytes, n_health: int, n_uploads: int
            ) -> dict[str, list[float | None]]:
    health: list[float | None] = []
    for _ in range(n_health):
        health.append(_timed(lambda: _request(port, "GET", "/healthz")))
        if health[-GIVE_UP_AFTER:] == [None] * GIVE_UP_AFTER:
            break
        time.sleep(0.05)
    uploads: list[float | None] = []
    for _ in range(n_uploads):
        if uploads[-GIVE_UP_AFTER:] == [None] * GIVE_UP_AFTER:
            break
        reply: dict[str, Any] = {}
        uploads.append(_timed(partial(_upload, port, photo, reply)))
        if reply:  # delete the photo, so every upload meets an empty booth
            with contextlib.suppress(OSError):
                _request(port, "DELETE", "/api/session",
                         headers={"Authorization": f"Bearer {reply['session_token']}"})
    return {"healthz": health, "upload": uploads}


def p95(values: list[float | None]) -> str:
    done = sorted(v for v in values if v is not None)
    failed = len(values) - len(done)
    if failed > len(values) * 0.05 or not done:
        return f"timed out ({failed} of {len(values)} tried)"
    index = min(len(done) - 1, round(0.95 * len(values)) - 1)
    return f"{done[index]:.0f}"


def ratio(quiet: list[float | None], loaded: list[float | None]) -> str:
    a = [v for v in quiet if v is not None]
    b = [v for v in loaded if v is not None]
    if len(b) < len(loaded) * 0.95 or not a or not b:
        return "n/a (requests timed out)"
    return f"{statistics.quantiles(b, n=20)[-1] / statistics.quantiles(a, n=20)[-1]:.2f}x"


@contextlib.contextmanager
def stock_gthread(tmp: Path) -> Iterator[int]:
    """Plain gunicorn gthread (4 threads, as before the guarded worker) serving the same app."""
    port = svc.free_port()
    store = Path("/dev/shm") / f"ephemera-bench-{secrets.token_hex(6)}" / "store"
    env = svc.service_env(port, store, memfd_secret=False)
    log = open(tmp / "stock.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "4", "-w", "1",
         "-b", f"127.0.0.1:{port}", "--worker-tmp-dir", "/dev/shm",
         "bench.slow_clients:stock_app()"],
        cwd=svc.REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if _request(port, "GET", "/healthz")[0] == 200:
                    break
            time.sleep(0.3)
        yield port
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(store.parent, ignore_errors=True)


def stock_app() -> Any:
    from appliance.config import load_config
    from appliance.web.app import create_app
    return create_app(load_config())


@contextlib.contextmanager
def booth(tmp: Path) -> Iterator[int]:
    with svc.running(tmp) as service:
        yield service.port


def run(label: str, server: Any, photo: bytes, args: argparse.Namespace) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp, server(Path(tmp)) as port:
        measure(port, photo, 3, 1)  # warm-up: models loaded, first job run
        quiet = measure(port, photo, args.health, args.uploads)
        with SlowClients(port, SLOW_HEADS, SLOW_BODIES) as slow:
            loaded = measure(port, photo, args.health, args.uploads)
        rows = []
        for what in ("healthz", "upload"):
            rows.append(f"| {label} | {what} | {p95(quiet[what])} | {p95(loaded[what])} | "
                        f"{ratio(quiet[what], loaded[what])} | {slow.reopened} |")
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--health", type=int, default=100)
    parser.add_argument("--uploads", type=int, default=10)
    parser.add_argument("--stock", action="store_true", help="also plain gthread (before)")
    args = parser.parse_args()
    photo = twelve_megapixel_jpeg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; 12 MP JPEG of {len(photo) / 1e6:.1f} MB; "
          f"{SLOW_HEADS} slow heads + {SLOW_BODIES} slow bodies\n")
    print("| server | request | p95 alone (ms) | p95 with 50 slow (ms) | ratio | "
          "slow connections dropped and reopened |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for row in run("booth (guarded worker)", booth, photo, args):
        print(row, flush=True)
    if args.stock:
        for row in run("plain gthread, 4 threads", stock_gthread, photo, args):
            print(row, flush=True)


if __name__ == "__main__":
    main()
