"""The guarded worker with a TLS listener beside the kiosk's plain one, in the same loop.

Why not gunicorn's own TLS: gunicorn applies its certificate to every bind, but the kiosk's
loopback listener stays plain HTTP (the kiosk's browser is on the same box) while guests' phones
must get HTTPS. Here only connections accepted on a listener named in ``tls_contexts`` are
wrapped, with ``do_handshake_on_connect=False``; the handshake runs in the event loop that
already reads request heads and bodies (``SSLWantReadError`` means "wait for the next event"),
under the same head deadline, so a client that stalls its handshake costs a socket, never a
thread. After the handshake the intake is the guarded worker's own: OpenSSL decrypts with
``recv_into`` straight into the same secure buffers.
"""

from __future__ import annotations

import errno
import ssl
from typing import Any, ClassVar

from gunicorn.workers.gthread import TConn

from appliance.web.guarded_worker import GuardedThreadWorker, Intake

Address = tuple[str, int]


def listener_key(sockname: Any) -> Address | None:
    """(host, port) of a listening socket's name; None for UNIX sockets."""
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return str(sockname[0]), int(sockname[1])
    return None


class LanThreadWorker(GuardedThreadWorker):
    """Plain HTTP on the kiosk's listener, TLS on the LAN listener, one process for both."""

    # Filled by ``serve`` before gunicorn forks its worker: listener (host, port) -> context.
    tls_contexts: ClassVar[dict[Address, ssl.SSLContext]] = {}

    def accept(self, listener: Any) -> None:
        context = self.tls_contexts.get(listener_key(listener.getsockname()) or ("", 0))
        if context is None:
            super().accept(listener)
            return
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        try:
            tls_sock = context.wrap_socket(client_sock, server_side=True,
                                           do_handshake_on_connect=False)
        except (OSError, ValueError):
            client_sock.close()
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, tls_sock, client_addr, listener.getsockname())
        conn.ephemera_address = str(client_addr[0]) if isinstance(client_addr, tuple) else ""
        conn.ephemera_handshaking = True
        self._start_intake(conn, b"")

    def _on_readable(self, intake: Intake, sock: Any) -> None:
        conn = intake.conn
        if getattr(conn, "ephemera_handshaking", False):
            try:
                conn.sock.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError,
                    InterruptedError):
                return  # more of the handshake next time the socket is readable
            except (ssl.SSLError, OSError, ValueError):
                # A broken handshake: there is no HTTP connection to answer on.
                self._close_intake(intake)
                return
            conn.ephemera_handshaking = False
            if not conn.sock.pending():
                return
        super()._on_readable(intake, sock)
        # OpenSSL may hold decrypted bytes the selector never signals: read them now.
        while (isinstance(conn.sock, ssl.SSLSocket) and id(conn) in self.intakes
               and self.intakes[id(conn)] is intake and conn.sock.pending()):
            super()._on_readable(intake, sock)
