"""A loopback port on this machine that leads to the test printer inside its namespace.

Why: the real service (gunicorn, its own process) must reach ``ippeveprinter``, which runs in a
network namespace of its own (see ``ipp_printer``). Each connection accepted on 127.0.0.1 here
is joined to a socket made on the thread inside the printer's namespace (a socket stays in the
namespace it was made in) and the bytes are copied both ways. The printer behind the port can
be swapped between tests, so a service started once prints to a fresh printer each time.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from tests.helpers.ipp_printer import PORT, Printer


class Forwarder:
    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = int(self.listener.getsockname()[1])
        self.printer: Printer | None = None
        self.connections = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="ipp-forward", daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"ipp://127.0.0.1:{self.port}/ipp/print"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            printer = self.printer
            if printer is None:
                client.close()  # no printer behind the port: the service sees it offline
                continue
            try:
                inner = printer.run(socket.create_connection, ("127.0.0.1", PORT), 10)
            except Exception:
                client.close()
                continue
            self.connections += 1
            with self._lock:
                self._open.update((client, inner))
            for source, target in ((client, inner), (inner, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)
            with self._lock:
                for sock in (source, target):
                    self._open.discard(sock)
            with contextlib.suppress(OSError):
                source.close()

    def drop_connections(self) -> None:
        """Close every open connection (a printer is swapped: nothing talks to the old one)."""
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self.printer = None
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self.listener.close()
        self.drop_connections()


@contextlib.contextmanager
def forwarder() -> Iterator[Forwarder]:
    forward = Forwarder()
    try:
        yield forward
    finally:
        forward.close()
