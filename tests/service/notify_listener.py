"""A stand-in for systemd's notification socket: a unix datagram socket that records each
message with the sender's pid (SO_PASSCRED), as systemd itself sees it."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Message:
    pid: int
    fields: dict[str, str]
    at: float


class NotifyListener:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(str(path))
        self.messages: list[Message] = []

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)

    def collect(self, until: float) -> None:
        """Record every message that arrives before ``until`` (time.monotonic)."""
        while (left := until - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(
                    4096, socket.CMSG_SPACE(struct.calcsize("3i")))
            except TimeoutError:
                return
            pid = 0
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:12])[0]
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(Message(pid, fields, time.monotonic()))

    def wait_for(self, key: str, value: str, timeout: float) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if message.fields.get(key) == value:
                    return message
            self.collect(min(deadline, time.monotonic() + 0.5))
        raise AssertionError(f"no {key}={value} in {timeout} s; got {self.messages}")
