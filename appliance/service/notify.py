"""sd_notify from the process that owns the models and the job worker.

Why not gunicorn's own notification: gunicorn's arbiter (the unit's main process) says READY=1 as
soon as it listens, before any model is loaded, and never sends WATCHDOG=1; the worker process
is the one that holds the models, the job keys and the job thread. So ``serve`` takes
``NOTIFY_SOCKET`` out of the arbiter's environment before gunicorn starts (the arbiter then says
nothing) and hands it to the worker, which says READY=1 once every model is open and WATCHDOG=1
only while its job thread is alive. The unit has ``NotifyAccess=all`` so the worker, a child of
the main process, is heard.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op: a laptop runs the same code.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from collections.abc import Callable, MutableMapping

log = logging.getLogger("ephemera.service")

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"


def _send_datagram(address: str, message: str) -> None:
    """The sd_notify protocol itself (one datagram to a unix socket; '@' is abstract)."""
    target = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(target)
        sock.sendall(message.encode())


def _systemd_python_sender(address: str) -> Callable[[str], None]:
    """systemd-python's ``sd_notify`` where it is installed; the protocol by hand otherwise."""
    try:
        daemon = importlib.import_module("systemd.daemon")
    except ImportError:
        return lambda message: _send_datagram(address, message)

    def send(message: str) -> None:
        # libsystemd reads $NOTIFY_SOCKET at each call; it is set only in the worker.
        os.environ[NOTIFY_SOCKET] = address
        if not daemon.notify(message):
            raise OSError(f"sd_notify to {address} failed")

    return send


class Notifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING to systemd, or nothing when not under systemd."""

    def __init__(self, address: str | None, watchdog_usec: int = 0,
                 sender: Callable[[str], None] | None = None) -> None:
        self.address = address or None
        self.watchdog_usec = watchdog_usec if self.address else 0
        self._send = sender if sender is not None else (
            _systemd_python_sender(self.address) if self.address else None)
        self.last_status = ""

    @classmethod
    def take_from_environment(cls, env: MutableMapping[str, str] | None = None) -> Notifier:
        """Read and *remove* ``NOTIFY_SOCKET`` so gunicorn's arbiter cannot announce READY."""
        env = os.environ if env is None else env
        address = env.pop(NOTIFY_SOCKET, None)
        raw = env.get(WATCHDOG_USEC, "")
        return cls(address, int(raw) if raw.isdigit() else 0)

    @property
    def enabled(self) -> bool:
        return self._send is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """Half the unit's WatchdogSec (systemd's advice), or None without a watchdog."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec > 0 else None

    def notify(self, *lines: str) -> bool:
        if self._send is None:
            return False
        try:
            self._send("\n".join(lines))
        except OSError as exc:  # systemd gone (shutdown): nothing to tell
            log.warning("sd_notify failed: %s", exc)
            return False
        return True

    def status(self, text: str) -> bool:
        self.last_status = text
        return self.notify(f"STATUS={text}")

    def ready(self, text: str) -> bool:
        self.last_status = text
        return self.notify("READY=1", f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=stopping: releasing every job")
