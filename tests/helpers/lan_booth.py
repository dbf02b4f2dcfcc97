"""The booth in its own network namespace with a guest LAN and an outside network beside it,
and clients that run inside those namespaces (the LAN tests, the LAN privacy proof)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.secure.pin import hash_pin
from tests.helpers import service as svc
from tests.helpers.netns import BOOTH_LAN, make_networks, remove_networks

KIOSK_PORT, LAN_PORT = 8080, 8443
ORIGIN = f"https://{BOOTH_LAN}:{LAN_PORT}"
PIN = "424242"


@dataclass
class Booth:
    names: dict[str, str]
    ca: Path
    proc: subprocess.Popen[str]
    log: Path
    store: Path

    def run(self, where: str, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run ``requests`` with the namespace client in namespace ``where``."""
        for spec in requests:
            spec.setdefault("cafile", str(self.ca))
        done = subprocess.run(
            ["ip", "netns", "exec", self.names[where], sys.executable, "-m",
             "tests.helpers.netns_client"], input=json.dumps(requests), capture_output=True,
            text=True, timeout=600, cwd=svc.REPO)
        assert done.returncode == 0, done.stderr[-3000:]
        return list(json.loads(done.stdout))

    def one(self, where: str, path: str, method: str = "GET", **spec: Any) -> Reply:
        base = f"http://127.0.0.1:{KIOSK_PORT}" if where == "booth" else ORIGIN
        answer = self.run(where, [{"method": method, "url": spec.pop("url", base + path),
                                   **spec}])[0]
        return Reply(answer)


class Reply:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.raw = answer
        self.status = int(answer.get("status", 0))
        self.headers: dict[str, str] = {}
        self.cookies: list[str] = []
        for name, value in answer.get("headers", []):
            self.headers[name.lower()] = value
            if name.lower() == "set-cookie":
                self.cookies.append(value)
        self.body = base64.b64decode(answer.get("body_b64", ""))

    def json(self) -> Any:
        return json.loads(self.body)


@contextlib.contextmanager
def running_booth(tmp: Path, wrapper: Sequence[str] = ()) -> Iterator[Booth]:
    """Namespaces, then ``ephemera serve`` with the LAN on inside the booth's; all removed
    after (SIGTERM first: the worker releases every job)."""
    tag = secrets.token_hex(3)
    store = Path("/dev/shm") / f"ephemera-netns-{tag}" / "store"
    names = make_networks(tag)
    log = tmp / "service.log"
    tls = tmp / "tls"
    env = svc.service_env(
        KIOSK_PORT, store, False, EPHEMERA_LAN_ENABLED="true", EPHEMERA_LAN_ADDRESS=BOOTH_LAN,
        EPHEMERA_LAN_PORT=str(LAN_PORT), EPHEMERA_LAN_ALLOWED_CIDRS="10.77.0.0/24",
        EPHEMERA_LAN_TLS_CERT=str(tls / "server.pem"),
        EPHEMERA_LAN_TLS_KEY=str(tls / "server.key"), EPHEMERA_ADMIN_PIN_HASH=hash_pin(PIN))
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", names["booth"], *wrapper, sys.executable, "-m", "appliance",
             "serve"], cwd=svc.REPO, env=env, stdout=handle, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)
    booth = Booth(names, tls / "ca.pem", proc, log, store)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            if booth.ca.is_file() and booth.one("booth", "/healthz").status == 200:
                break
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield booth
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        remove_networks(names)
        shutil.rmtree(store.parent, ignore_errors=True)
