"""Many phones at once over TLS: 32 guest sessions, each uploading a 12-megapixel photo and
running an effect while polling its progress, plus slow clients, against the real service in
network namespaces (the booth in one, the phones, each with its own address, in another).

Measured: the status of every answer (no 5xx expected; 429/503 with Retry-After are retried
as a phone would), how many jobs completed, the largest queue position a guest saw (bounded by
``queue.depth``), p50/p95 latency of status polls (``GET /api/jobs/<id>``) and of the phone page
(``GET /phone``) while jobs run, and the peak RSS of the service (arbiter + worker, VmHWM).

Run (root, for ip netns): PYTHONPATH=. python bench/load.py [--sessions 32] [--slow 8]
Needs the reference models (`ephemera build`). Prints a Markdown summary for BENCHMARKS.md.
Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests.helpers import service as svc
from tests.helpers.images import twelve_megapixels
from tests.helpers.netns import BOOTH_LAN, add_guest_addresses, make_networks, remove_networks

LAN_PORT, KIOSK_PORT = 8443, 8080
ORIGIN = f"https://{BOOTH_LAN}:{LAN_PORT}"
POLL_S = 0.5


# -- the phones (run inside the LAN namespace) ------------------------------------------------

class Phone:
    """One guest's phone: its own address, one keep-alive TLS connection, the session cookie."""

    def __init__(self, address: str, context: ssl.SSLContext, results: dict[str, Any],
                 lock: threading.Lock, deadline: float) -> None:
        self.address, self.context, self.results, self.lock = address, context, results, lock
        self.deadline = deadline
        self.cookie = ""
        self.conn: http.client.HTTPSConnection | None = None

    def _conn(self) -> http.client.HTTPSConnection:
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(BOOTH_LAN, LAN_PORT, context=self.context,
                                                    timeout=120,
                                                    source_address=(self.address, 0))
        return self.conn

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, kind: str = "") -> tuple[int, Any, dict]:
        all_headers = {"Origin": ORIGIN, **(headers or {})}
        if self.cookie:
            all_headers["Cookie"] = self.cookie
        started = time.perf_counter()
        try:
            conn = self._conn()
            conn.request(method, path, body=body, headers=all_headers)
            reply = conn.getresponse()
            data = reply.read()
        except (OSError, http.client.HTTPException) as exc:
            self.conn = None
            self._count(f"{kind or path} error:{type(exc).__name__}")
            return 0, None, {}
        elapsed = time.perf_counter() - started
        answer_headers = {k.lower(): v for k, v in reply.getheaders()}
        if reply.getheader("Connection", "").lower() == "close":
            conn.close()
            self.conn = None
        cookie = reply.getheader("Set-Cookie")
        if cookie and cookie.startswith("__Host-ephemera-session="):
            self.cookie = cookie.split(";")[0]
        with self.lock:
            self.results["statuses"].setdefault(kind, {}).setdefault(str(reply.status), 0)
            self.results["statuses"][kind][str(reply.status)] += 1
            if kind in ("status", "page", "idle page", "idle status"):
                self.results["latency"].setdefault(kind, []).append(elapsed)
        try:
            parsed = json.loads(data) if data[:1] == b"{" else None
        except ValueError:
            parsed = None
        return reply.status, parsed, answer_headers

    def _count(self, key: str) -> None:
        with self.lock:
            self.results["errors"][key] = self.results["errors"].get(key, 0) + 1

    def _until_accepted(self, method: str, path: str, body: bytes | None,
                        headers: dict[str, str], kind: str) -> tuple[int, Any]:
        """Retry 429/503 after their Retry-After, as the phone page does."""
        while time.monotonic() < self.deadline:
            status, parsed, answer = self.request(method, path, body, headers, kind)
            if status in (429, 503):
                time.sleep(min(10.0, float(answer.get("retry-after", "2"))))
                continue
            if status == 0:
                time.sleep(1.0)
                continue
            return status, parsed
        return 0, None

    def run(self, photo: bytes) -> None:
        self.request("GET", "/phone", kind="page")  # the guest opens the booth's page first
        status, body = self._until_accepted(
            "POST", "/api/photos", photo, {"Content-Type": "image/jpeg",
                                           "X-Ephemera-Consent": "adults-consenting"}, "upload")
        if status != 201 or body is None:
            self._count(f"upload gave {status}")
            return
        wanted = json.dumps({"effect": "faces", "photos": [body["photo_id"]]}).encode()
        status, job = self._until_accepted("POST", "/api/jobs", wanted,
                                           {"Content-Type": "application/json"}, "job")
        if status != 202 or job is None:
            self._count(f"job gave {status}")
            return
        if self.results["mode"] == "stream":
            self.follow_stream(job["job_id"])
            self.request("DELETE", "/api/session", kind="delete")
            return
        polls = 0
        while time.monotonic() < self.deadline:
            time.sleep(POLL_S)
            status, state, _ = self.request("GET", f"/api/jobs/{job['job_id']}", kind="status")
            polls += 1
            if polls % 4 == 0:
                self.request("GET", "/phone", kind="page")
            if state is None:
                continue
            position = state.get("queue_position")
            if position is not None:
                with self.lock:
                    self.results["max_position"] = max(self.results["max_position"], position)
            if state.get("state") in ("done", "failed"):
                with self.lock:
                    self.results["jobs"][state["state"]] += 1
                break
        self.request("DELETE", "/api/session", kind="delete")


    def _record(self, state: dict[str, Any]) -> bool:
        """Note a status (queue position, the end); True once the job has ended."""
        position = state.get("queue_position")
        with self.lock:
            if position is not None:
                self.results["max_position"] = max(self.results["max_position"], position)
            if state.get("state") in ("done", "failed"):
                self.results["jobs"][state["state"]] += 1
                return True
        return False

    def follow_stream(self, job_id: str) -> None:
        """Server-sent events on a connection of their own, as the phone page does; the page
        again every 2 s meanwhile (on the keep-alive connection), as with polling."""
        started = time.perf_counter()
        try:
            raw = socket.create_connection((BOOTH_LAN, LAN_PORT), timeout=120,
                                           source_address=(self.address, 0))
            sock = self.context.wrap_socket(raw, server_hostname=BOOTH_LAN)
        except OSError as exc:
            self._count(f"stream error:{type(exc).__name__}")
            return
        with sock:
            sock.sendall(f"GET /api/jobs/{job_id}/events HTTP/1.1\r\nHost: {BOOTH_LAN}:"
                         f"{LAN_PORT}\r\nCookie: {self.cookie}\r\nAccept: text/event-stream"
                         "\r\n\r\n".encode())
            sock.settimeout(4 * POLL_S)
            buffer, head_done, first, ended = b"", False, True, False
            next_page = time.monotonic() + 4 * POLL_S
            while not ended and time.monotonic() < self.deadline:
                if time.monotonic() >= next_page:
                    self.request("GET", "/phone", kind="page")
                    next_page = time.monotonic() + 4 * POLL_S
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError as exc:
                    self._count(f"stream error:{type(exc).__name__}")
                    return
                if not chunk:
                    break
                buffer += chunk
                if not head_done:
                    if b"\r\n\r\n" not in buffer:
                        continue
                    head_done = True
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    code = head.split(b" ", 2)[1].decode()
                    with self.lock:
                        kinds = self.results["statuses"].setdefault("stream", {})
                        kinds[code] = kinds.get(code, 0) + 1
                    if code != "200":
                        return
                while b"\n\n" in buffer:
                    block, _, buffer = buffer.partition(b"\n\n")
                    data = [line[5:] for line in block.split(b"\n")
                            if line.startswith(b"data:")]
                    if not data:
                        continue
                    if first:  # the stream's answer and first status: its "status" latency
                        first = False
                        with self.lock:
                            self.results["latency"]["status"].append(
                                time.perf_counter() - started)
                    ended = self._record(json.loads(b"".join(data)))


def slow_client(address: str, context: ssl.SSLContext, stop: threading.Event,
                results: dict[str, Any], lock: threading.Lock, heads: bool) -> None:
    """Trickle a request (its head, or a 3 MB body at 1 KB/s) until the booth drops it, again."""
    while not stop.is_set():
        sock: Any = None
        try:
            raw = socket.create_connection((BOOTH_LAN, LAN_PORT), timeout=30,
                                           source_address=(address, 0))
            sock = context.wrap_socket(raw, server_hostname=BOOTH_LAN)
            head = (f"POST /api/photos HTTP/1.1\r\nHost: {BOOTH_LAN}:{LAN_PORT}\r\n"
                    f"Origin: {ORIGIN}\r\nContent-Type: image/jpeg\r\n"
                    "X-Ephemera-Consent: adults-consenting\r\nContent-Length: 3000000\r\n")
            if heads:
                for byte in head.encode():
                    if stop.wait(1.0):
                        break
                    sock.send(bytes([byte]))
            else:
                sock.send((head + "\r\n").encode())
                while not stop.wait(1.0):
                    sock.send(b"\0" * 1024)
        except OSError:
            with lock:
                results["slow_dropped"] += 1
        finally:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


def run_phones(spec: dict[str, Any]) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=spec["ca"])
    photo = base64.b64decode(spec["photo_b64"])
    results: dict[str, Any] = {"mode": spec["progress"], "statuses": {},
                               "latency": {"status": [], "page": []},
                               "errors": {}, "jobs": {"done": 0, "failed": 0},
                               "max_position": 0, "slow_dropped": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + spec["limit_s"]
    stop = threading.Event()
    slow = [threading.Thread(target=slow_client, daemon=True,
                             args=(address, context, stop, results, lock, i % 2 == 0))
            for i, address in enumerate(spec["slow_addresses"])]
    phones = [threading.Thread(target=Phone(a, context, results, lock, deadline).run,
                               args=(photo,)) for a in spec["addresses"]]
    # The reference, same run: the page and a status-sized request with nothing else going on.
    idle = Phone(spec["addresses"][0], context, results, lock, deadline)
    for _ in range(40):
        idle.request("GET", "/phone", kind="idle page")
        idle.request("GET", "/healthz", kind="idle status")
    results["idle"] = {kind: results["latency"].pop(kind, []) for kind in
                       ("idle page", "idle status")}
    started = time.monotonic()
    for thread in slow + phones:
        thread.start()
    for thread in phones:
        thread.join()
    results["duration_s"] = time.monotonic() - started
    stop.set()
    return results


# -- the booth and the measurement (root namespace) -------------------------------------------

def rss_peak_kib(pid: int) -> int:
    """VmHWM of the service's processes (the arbiter and its worker)."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
    for one in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--slow", type=int, default=8)
    parser.add_argument("--limit-s", type=float, default=900.0)
    parser.add_argument("--progress", choices=("stream", "poll"), default="stream",
                        help="how phones follow their jobs: server-sent events (as the pages "
                             "do) or polling GET /api/jobs/<id> every 0.5 s")
    parser.add_argument("--background-nice", type=int, default=None,
                        help="the service's models.background_nice (default: its own, 10); "
                             "0 runs the models at the pages' priority")
    parser.add_argument("--phones-json", help=argparse.SUPPRESS)  # inside the namespace
    args = parser.parse_args()
    if args.phones_json:
        spec = json.loads(Path(args.phones_json).read_text())
        print(json.dumps(run_phones(spec)))
        return 0
    if os.geteuid() != 0:
        print("bench/load.py needs root (ip netns)", file=sys.stderr)
        return 2
    tag = secrets.token_hex(3)
    tmp = Path(tempfile.mkdtemp(prefix="ephemera-load-"))
    store = Path("/dev/shm") / f"ephemera-load-{tag}" / "store"
    names = make_networks(tag)
    proc = None
    try:
        addresses = add_guest_addresses(names, tag, args.sessions + args.slow)
        env = svc.service_env(
            KIOSK_PORT, store, False, EPHEMERA_LAN_ENABLED="true",
            EPHEMERA_LAN_ADDRESS=BOOTH_LAN, EPHEMERA_LAN_PORT=str(LAN_PORT),
            EPHEMERA_LAN_ALLOWED_CIDRS="10.77.0.0/24",
            EPHEMERA_LAN_TLS_CERT=str(tmp / "tls" / "server.pem"),
            EPHEMERA_LAN_TLS_KEY=str(tmp / "tls" / "server.key"),
            **({} if args.background_nice is None
               else {"EPHEMERA_MODELS_BACKGROUND_NICE": str(args.background_nice)}))
        log = open(tmp / "service.log", "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(["ip", "netns", "exec", names["booth"], sys.executable, "-m",
                                 "appliance", "serve"], cwd=svc.REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 120
        probe = ("import urllib.request,sys; sys.exit(urllib.request.urlopen("
                 f"'http://127.0.0.1:{KIOSK_PORT}/healthz', timeout=5).status != 200)")
        while not (tmp / "tls" / "ca.pem").is_file() or subprocess.run(
                ["ip", "netns", "exec", names["booth"], sys.executable, "-c", probe],
                capture_output=True).returncode:
            if time.monotonic() > deadline or proc.poll() is not None:
                print((tmp / "service.log").read_text()[-3000:], file=sys.stderr)
                return 1
            time.sleep(0.5)
        # Sensor-like noise, so the JPEG is as large as a phone's (a few MB), not 1 MB.
        noisy = twelve_megapixels().astype(np.int16) + np.random.default_rng(0).normal(
            0, 6, (3000, 4000, 3)).astype(np.int16)
        ok, jpeg = cv2.imencode(".jpg", np.clip(noisy, 0, 255).astype(np.uint8),
                                [cv2.IMWRITE_JPEG_QUALITY, 92])
        assert ok
        spec = {"ca": str(tmp / "tls" / "ca.pem"), "limit_s": args.limit_s,
                "progress": args.progress,
                "photo_b64": base64.b64encode(jpeg.tobytes()).decode(),
                "addresses": addresses[:args.sessions],
                "slow_addresses": addresses[args.sessions:]}
        (tmp / "phones.json").write_text(json.dumps(spec))
        idle_rss = rss_peak_kib(proc.pid)
        peak = [idle_rss]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.5):
                peak.append(rss_peak_kib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        done = subprocess.run(["ip", "netns", "exec", names["lan"], sys.executable,
                               str(Path(__file__).resolve()), "--phones-json",
                               str(tmp / "phones.json")], cwd=svc.REPO, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(svc.REPO)})
        sampling.set()
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        results = json.loads(done.stdout)
        report(args, results, len(jpeg), idle_rss, max(peak))
        return 0
    finally:
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
        remove_networks(names)
        shutil.rmtree(store.parent, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def report(args: argparse.Namespace, results: dict[str, Any], photo_bytes: int,
           idle_kib: int, peak_kib: int) -> None:
    statuses = results["statuses"]
    five_xx = sum(n for kinds in statuses.values() for code, n in kinds.items()
                  if code.startswith("5") and code != "503")
    print(f"bench/load.py: {args.sessions} phone sessions over TLS (each its own address), "
          f"{args.slow} slow clients; 12-megapixel JPEG of {photo_bytes / 1e6:.1f} MB; effect "
          "`faces`; progress: " + ("server-sent events (`status` = opening the stream to "
                                   "its first event)" if args.progress == "stream" else
                                   f"polls every {POLL_S} s") + "\n")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average before: {os.getloadavg()[0]:.1f}\n")
    print("| measure | value |\n| --- | --- |")
    print(f"| wall time | {results['duration_s']:.0f} s |")
    print(f"| jobs done / failed of {args.sessions} | {results['jobs']['done']} / "
          f"{results['jobs']['failed']} |")
    for kind in ("status", "page"):
        values = results["latency"][kind]
        print(f"| `{kind}` requests: n, p50, p95, max | {len(values)}, "
              f"{1000 * statistics.median(values) if values else float('nan'):.0f} ms, "
              f"{1000 * percentile(values, 0.95):.0f} ms, "
              f"{1000 * max(values) if values else float('nan'):.0f} ms |")
    for kind, under_load in (("idle status", "status"), ("idle page", "page")):
        idle = results["idle"][kind]
        loaded = results["latency"][under_load]
        ratio = percentile(loaded, 0.95) / percentile(idle, 0.95)
        print(f"| `{kind}` (no load, same run; `/healthz` for status): p50, p95 | "
              f"{1000 * statistics.median(idle):.0f} ms, {1000 * percentile(idle, 0.95):.0f} ms "
              f"(p95 under load / idle: {ratio:.0f}x) |")
    print(f"| 5xx answers (503 busy excluded: it carries Retry-After) | {five_xx} |")
    print(f"| largest queue position seen | {results['max_position']} |")
    print(f"| service RSS idle / peak (VmHWM, arbiter + worker) | {idle_kib / 1024:.0f} MiB / "
          f"{peak_kib / 1024:.0f} MiB |")
    print(f"| slow-client connections dropped by the booth | {results['slow_dropped']} |")
    print(f"\nanswers by request: `{json.dumps(statuses, sort_keys=True)}`")
    if results["errors"]:
        print(f"\nclient-side errors: `{json.dumps(results['errors'], sort_keys=True)}`")


if __name__ == "__main__":
    sys.exit(main())
