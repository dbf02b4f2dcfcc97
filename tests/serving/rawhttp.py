"""Hand-made HTTP/1.1 over a socket: what a slow or hostile client sends."""

from __future__ import annotations

import json
import socket
import time
from typing import Any


def connect(port: int, timeout: float = 30) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_answer(sock: socket.socket, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case) and body of one answer; (0, {}, b"") if the peer closed."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return 0, {}, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def exchange(port: int, raw: bytes, timeout: float = 30) -> tuple[int, dict[str, str], Any]:
    """Send ``raw`` at once; the answer with its JSON body parsed."""
    with connect(port, timeout) as sock:
        sock.sendall(raw)
        status, headers, body = read_answer(sock, timeout)
    return status, headers, json.loads(body) if body else None


def timed_get(port: int, path: str, timeout: float) -> float:
    """Seconds for one GET answered with 200; raises on a timeout or another status."""
    started = time.monotonic()
    with connect(port, timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                     .encode())
        status, _headers, _body = read_answer(sock, timeout)
    assert status == 200, status
    return time.monotonic() - started
