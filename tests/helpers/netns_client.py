"""A client run inside a network namespace (``ip netns exec NS python -m ...``).

Reads a JSON list of requests on stdin and prints a JSON list of answers: each request is
``{"method", "url", "headers", "body_b64", "cafile", "source"}`` (``source``: the client's own
address, one of the namespace's; https verifies the certificate against
``cafile`` and the address in the URL, as a phone that trusts the booth's CA would), or
``{"scan": host, "ports": [low, high]}``, which lists the TCP ports that accept a connection,
or ``{"stall": n, "host", "port"}``, which opens n connections that send the first bytes of a
TLS handshake and nothing more, then ``{"wait_closed": seconds}``, which answers how long the
server took to close all of them (None: some still open), or ``{"streams": n, "url",
"headers", "cafile"}``, which opens n event streams over verified TLS at once and then reads each
to its end (each answer's status, headers and body).
"""

from __future__ import annotations

import base64
import errno
import http.client
import json
import selectors
import socket
import ssl
import sys
import time
from typing import Any
from urllib.parse import urlsplit


def fetch(spec: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(spec["url"])
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    conn: http.client.HTTPConnection
    source = (spec["source"], 0) if spec.get("source") else None
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=spec.get("cafile"))
        conn = http.client.HTTPSConnection(host, port, context=context, timeout=30,
                                           source_address=source)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=30, source_address=source)
    body = base64.b64decode(spec["body_b64"]) if spec.get("body_b64") else None
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(spec.get("method", "GET"), path or "/", body=body,
                     headers=spec.get("headers", {}))
        reply = conn.getresponse()
        data = reply.read()
    except ssl.SSLCertVerificationError as exc:
        return {"error": "certificate", "detail": exc.verify_message}
    except OSError as exc:
        return {"error": "connect", "detail": type(exc).__name__}
    finally:
        conn.close()
    return {"status": reply.status, "headers": [[k, v] for k, v in reply.getheaders()],
            "body_b64": base64.b64encode(data).decode()}


def scan(host: str, low: int, high: int, batch: int = 512) -> list[int]:
    """Every port in [low, high] that completes a TCP handshake (non-blocking, in batches)."""
    open_ports: list[int] = []
    for start in range(low, high + 1, batch):
        selector = selectors.DefaultSelector()
        for port in range(start, min(start + batch, high + 1)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            result = sock.connect_ex((host, port))
            if result not in (0, errno.EINPROGRESS):
                sock.close()
                continue
            selector.register(sock, selectors.EVENT_WRITE, port)
        while selector.get_map():
            events = selector.select(timeout=3.0)
            if not events:
                break
            for key, _mask in events:
                sock = key.fileobj  # type: ignore[assignment]
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    open_ports.append(key.data)
                selector.unregister(sock)
                sock.close()
        for key in list(selector.get_map().values()):  # no answer at all: filtered, not open
            selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()
    return sorted(open_ports)


def wait_closed(stalled: list[socket.socket], limit_s: float) -> float | None:
    started = time.monotonic()
    open_ones = list(stalled)
    while open_ones and time.monotonic() - started < limit_s:
        for sock in list(open_ones):
            sock.settimeout(0.1)
            try:
                if sock.recv(1) == b"":
                    open_ones.remove(sock)
            except TimeoutError:
                continue
            except OSError:
                open_ones.remove(sock)
    return None if open_ones else round(time.monotonic() - started, 1)


def read_to_close(sock: socket.socket) -> dict[str, Any]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [[k.strip(), v.strip()] for k, _, v in (x.partition(":") for x in lines[1:])]
    return {"status": int(lines[0].split()[1]) if lines[0] else 0, "headers": headers,
            "body_b64": base64.b64encode(body).decode()}


def streams(spec: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(spec["url"])
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.create_default_context(cafile=spec.get("cafile"))
    extra = "".join(f"{k}: {v}\r\n" for k, v in spec.get("headers", {}).items())
    request = (f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}"
               "Accept: text/event-stream\r\nConnection: close\r\n\r\n").encode()
    socks = []
    for _ in range(spec["streams"]):
        source = (spec["source"], 0) if spec.get("source") else None
        sock = context.wrap_socket(socket.create_connection((host, port), timeout=120,
                                                            source_address=source),
                                   server_hostname=host)
        sock.sendall(request)
        socks.append(sock)
    answers = []
    for sock in socks:
        with sock:
            answers.append(read_to_close(sock))
    return {"streams": answers}


def main() -> None:
    answers: list[dict[str, Any]] = []
    stalled: list[socket.socket] = []
    for spec in json.load(sys.stdin):
        if "stall" in spec:
            for _ in range(spec["stall"]):
                sock = socket.create_connection((spec["host"], spec["port"]), timeout=10)
                sock.sendall(b"\x16\x03\x01")  # a TLS record header, then silence
                stalled.append(sock)
            answers.append({"stalled": len(stalled)})
        elif "wait_closed" in spec:
            answers.append({"closed_after_s": wait_closed(stalled, spec["wait_closed"])})
        elif "streams" in spec:
            answers.append(streams(spec))
        elif "scan" in spec:
            answers.append({"open": scan(spec["scan"], *spec["ports"])})
        else:
            answers.append(fetch(spec))
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
