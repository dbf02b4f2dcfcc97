"""gunicorn's threaded worker with the slow part of HTTP moved out of the threads.

Why: gunicorn's ``gthread`` worker hands a connection to one of its few threads as soon as a
byte arrives, and that thread then blocks until the request head and body are complete. Four
clients that send one header line every two seconds, or a body that trickles or stops, held all
four threads and took the booth offline. Here the worker's event loop (the ``selectors`` loop
gunicorn already runs for accepting and keep-alive) reads every request head and every request
body itself, without blocking, under deadlines and a minimum upload rate; a thread is given the
request only when all of it is in memory, so threads only ever do the application's work.

- Head: complete within ``head_timeout_s`` of the connection (or of the keep-alive wait)
  starting; at most ``max_head_bytes``; a request line over gunicorn's ``limit_request_line``
  is a 414 and too many header fields a 431, both as JSON.
- Body: read with ``recv_into`` straight into a secure buffer (locked, wiped on release; never
  an immutable ``bytes``, never a temporary file); dropped with a 408 when no byte came for
  ``idle_timeout_s`` or, after ``body_grace_s``, the average rate is under ``min_body_rate``.
  A client that goes away mid-upload is dropped before the application ever sees the request.
- Budget: bodies in flight across all clients are at most ``body_budget_bytes``, of which
  ``kiosk_reserve_bytes`` only the kiosk (loopback) may use; a LAN address may have at most
  ``max_bodies_per_address`` bodies arriving and ``max_connections_per_address`` connections.
  Over the budget the answer is a JSON 503 with ``Retry-After`` at once, not a wait.
- Errors gunicorn itself answers (bad request line, bad or duplicate Content-Length, ...) are
  JSON ``{error, message, remedy}`` like every other error of the booth.

A progress stream (``appliance.web.progress_stream``) leaves the worker: its request thread
marks the connection handed over, and the worker then forgets it without closing it.

The application reads an upload through ``request.stream.readinto`` as before (the prefetched
buffer is the WSGI input), or adopts the secure buffer whole (``adopt_request_body``), so the
upload is never copied. The same loop drives a TLS listener later (see docs/SERVING.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import json
import secrets
import select
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import TConn, ThreadWorker

from appliance.media.decode import ImageLimits
from appliance.secure.buffers import REGISTRY, SecureBuffer, wipe_bytearray

BODY_OWNER_PREFIX = "request-"
RESPONSE_HEADERS = (
    "Content-Type: application/json\r\nCache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'none'; "
    "frame-ancestors 'none'\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n")


@dataclass(frozen=True)
class ServingLimits:
    """How slow and how big a request may be, and how much of the worker slow clients get."""

    head_timeout_s: float = 10.0
    idle_timeout_s: float = 10.0
    body_grace_s: float = 5.0
    min_body_rate: int = 32 << 10  # bytes per second, averaged after the grace period
    max_head_bytes: int = 16 << 10
    max_body_bytes: int = ImageLimits().max_bytes
    body_budget_bytes: int = 64 << 20
    kiosk_reserve_bytes: int = 24 << 20
    max_bodies_per_address: int = 2
    max_connections_per_address: int = 16
    send_timeout_s: float = 15.0  # per response chunk: a reader that stops is dropped


LIMITS = ServingLimits()


def is_kiosk(address: str) -> bool:
    """The kiosk is this box itself (loopback); everything else is the LAN."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def json_error(status: int, reason: str, code: str, message: str, remedy: str,
               retry_after_s: int | None = None) -> bytes:
    """A complete HTTP/1.1 error answer in the booth's JSON shape (Connection: close)."""
    body: dict[str, Any] = {"error": code, "message": message, "remedy": remedy}
    extra = ""
    if retry_after_s is not None:
        body["retry_after_s"] = retry_after_s
        extra = f"Retry-After: {retry_after_s}\r\n"
    payload = json.dumps(body).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\n{RESPONSE_HEADERS}{extra}"
            f"Content-Length: {len(payload)}\r\n\r\n")
    return head.encode("latin-1") + payload


TIMEOUT_408 = ("request_timeout", "The request arrived too slowly and was dropped.",
               "Check the connection (move closer to the booth's Wi-Fi) and try again.")


class PrefetchedBody:
    """The WSGI input over a body already read into a secure buffer."""

    def __init__(self, buffer: SecureBuffer) -> None:
        self.buffer = buffer
        self.position = 0

    def _left(self) -> int:
        return 0 if self.buffer.released else self.buffer.nbytes - self.position

    def readinto(self, target: Any) -> int:
        with memoryview(target).cast("B") as view:
            count = min(view.nbytes, self._left())
            if count:
                destination = (ctypes.c_char * count).from_buffer(view)
                ctypes.memmove(destination, self.buffer.address + self.position, count)
                del destination
            self.position += count
            return count

    def read(self, size: int | None = -1) -> bytes:
        """For small non-image bodies (JSON); an upload is read with ``readinto``."""
        count = self._left() if size is None or size < 0 else min(size, self._left())
        data = bytes(self.buffer.view()[self.position:self.position + count]) if count else b""
        self.position += count
        return data

    def readline(self, size: int | None = -1) -> bytes:
        return self.read(size)

    def readlines(self, _hint: int | None = -1) -> list[bytes]:
        data = self.read()
        return [data] if data else []

    def __iter__(self) -> Any:
        return iter(self.readlines())


def adopt_request_body(environ: dict[str, Any], length: int, owner: str,
                       label: str = "upload") -> SecureBuffer | None:
    """The request's body as a secure buffer now owned by ``owner`` (a job), or None.

    None when the serving layer did not prefetch it (the Flask test client, a body of another
    size): the caller then reads ``request.stream`` itself.
    """
    body = environ.get("wsgi.input")
    if not isinstance(body, PrefetchedBody) or body.position != 0:
        return None
    buffer = body.buffer
    if buffer.released or buffer.nbytes != length or not buffer.owner.startswith(
            BODY_OWNER_PREFIX):
        return None
    buffer.owner, buffer.label = owner, label
    body.position = buffer.nbytes  # the WSGI input is used up
    return buffer


def client_gone(environ: dict[str, Any]) -> bool:
    """True when the client has closed its connection (checked without blocking or reading).

    An upload whose client left before the answer would start a job nobody can reach: its
    session token never arrives, so nobody could delete it before it expires. Routes drop it.
    """
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return False
    try:
        # Poll first: a socket with a timeout waits that long inside recv, flags or not.
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        if isinstance(sock, ssl.SSLSocket):  # peek below TLS (a duplicate of the descriptor)
            with socket.fromfd(sock.fileno(), sock.family, sock.type) as raw:
                return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError, TimeoutError, ssl.SSLWantReadError):
        return False
    except OSError:
        return True


class ConnectionHandedOverError(Exception):
    """Raised through gunicorn once a request's connection belongs to someone else (the
    progress hub): the worker neither answers on it, nor keeps it alive, nor closes it."""


_handling = threading.local()  # the connection the current request thread is answering


def hand_over_connection(sock: Any) -> bool:
    """Called in a request thread: True when ``sock`` is this request's connection and the
    worker will forget it (the caller then owns it and raises ``ConnectionHandedOverError``)."""
    conn = getattr(_handling, "conn", None)
    if conn is None or conn.sock is not sock:
        return False
    conn.ephemera_handed_over = True
    return True


@dataclass
class Intake:
    """One request arriving on a connection, read by the event loop."""

    conn: TConn
    address: str
    kiosk: bool
    started: float
    head: bytearray
    head_len: int = 0
    head_end: int = -1
    last_byte: float = 0.0
    body: SecureBuffer | None = None
    body_received: int = 0
    body_started: float = 0.0
    bytes_reserved: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _uri_too_long() -> bytes:
    return json_error(414, "URI Too Long", "uri_too_long", "The address is too long.",
                      "Open the link the booth shows, not a modified one.")


class _RefusedError(Exception):
    def __init__(self, answer: bytes) -> None:
        super().__init__("refused")
        self.answer = answer


class GuardedThreadWorker(ThreadWorker):
    """``gthread`` whose event loop reads request heads and bodies; threads run the app."""

    limits = LIMITS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.intakes: dict[int, Intake] = {}
        self.per_address: dict[str, int] = {}
        self.bodies_per_address: dict[str, int] = {}
        self.budget_lock = threading.Lock()
        self.bytes_total = 0
        self.bytes_lan = 0

    # -- connections in --------------------------------------------------------------------

    def accept(self, listener: Any) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        address = str(client_addr[0]) if isinstance(client_addr, tuple) else ""
        conn.ephemera_address = address
        self._start_intake(conn, b"")

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        """A kept-alive connection has its next request: read it in the loop too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._start_intake(conn, b"")

    def enqueue_req(self, conn: TConn) -> None:
        if getattr(conn, "ephemera_ready", False):
            conn.ephemera_ready = False
            super().enqueue_req(conn)
            return
        # A pipelined request already read ahead by the parser: start its intake with it.
        pending = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        self._start_intake(conn, pending)

    def _start_intake(self, conn: TConn, pending: bytes) -> None:
        address = getattr(conn, "ephemera_address", "")
        now = time.monotonic()
        kiosk = is_kiosk(address)
        conn.sock.setblocking(False)
        if not kiosk and self.per_address.get(address, 0) >= (
                self.limits.max_connections_per_address):
            self._answer_and_close(conn, json_error(
                429, "Too Many Requests", "too_many_connections", "This device has too many "
                "requests open to the booth.", "Close other tabs and try again.", 5))
            return
        self.per_address[address] = self.per_address.get(address, 0) + 1
        intake = Intake(conn, address, kiosk, now, bytearray(self.limits.max_head_bytes),
                        last_byte=now)
        self.intakes[id(conn)] = intake
        if pending:
            if len(pending) > len(intake.head):
                self._refuse(intake, self._head_too_large())
                return
            intake.head[:len(pending)] = pending
            intake.head_len = len(pending)
            if self._advance_head(intake):
                return
        self.poller.register(conn.sock, selectors.EVENT_READ,
                             partial(self._on_readable, intake))

    # -- reading ---------------------------------------------------------------------------

    def _on_readable(self, intake: Intake, _sock: Any) -> None:
        sock = intake.conn.sock
        try:
            if intake.body is None:
                with memoryview(intake.head)[intake.head_len:] as free:
                    count = sock.recv_into(free)
            else:
                with intake.body.memoryview() as view, view[intake.body_received:] as free:
                    count = sock.recv_into(free)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                ssl.SSLWantWriteError):
            return
        except OSError:
            self._close_intake(intake)
            return
        if count == 0:  # the client went away: whatever it sent is dropped, never processed
            self._close_intake(intake)
            return
        intake.last_byte = time.monotonic()
        if intake.body is None:
            intake.head_len += count
            self._advance_head(intake)
        else:
            intake.body_received += count
            if intake.body_received == intake.body.nbytes:
                self._dispatch(intake)

    def _advance_head(self, intake: Intake) -> bool:
        """Look for the end of the head; True when the intake was dispatched or refused."""
        end = intake.head.find(b"\r\n\r\n", 0, intake.head_len)
        if end < 0:
            if intake.head_len >= len(intake.head):
                line_ended = intake.head.find(b"\r\n", 0, intake.head_len) >= 0
                self._refuse(intake, self._head_too_large() if line_ended else _uri_too_long())
                return True
            return False
        intake.head_end = end + 4
        try:
            length, expect_continue = self._inspect_head(intake)
            if length:
                self._start_body(intake, length, expect_continue)
                if intake.body_received < length:
                    return False
        except _RefusedError as refused:
            self._refuse(intake, refused.answer)
            return True
        self._dispatch(intake)
        return True

    def _inspect_head(self, intake: Intake) -> tuple[int, bool]:
        """The body length to read here (0: none, or let the application refuse it)."""
        lines = bytes(intake.head[:intake.head_end - 4]).split(b"\r\n")
        line_limit = self.cfg.limit_request_line
        if line_limit and len(lines[0]) > line_limit:
            raise _RefusedError(_uri_too_long())
        field_limit = self.cfg.limit_request_fields
        if field_limit and len(lines) - 1 > field_limit:
            raise _RefusedError(self._head_too_large())
        lengths, chunked, expect = [], False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                lengths.append(value.strip())
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"expect":
                expect = value.strip().lower() == b"100-continue"
        if chunked or len(lengths) != 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
            return 0, False  # no body, or one gunicorn refuses (its answer is JSON too)
        length = int(lengths[0])
        if length > self.limits.max_body_bytes:
            return 0, False  # the application refuses it from its headers, unread (413)
        return length, expect

    def _start_body(self, intake: Intake, length: int, expect_continue: bool) -> None:
        self._reserve(intake, length)
        owner = BODY_OWNER_PREFIX + secrets.token_hex(8)
        intake.body = REGISTRY.allocate(length, owner=owner, label="request-body")
        intake.body_started = time.monotonic()
        tail = intake.head_len - intake.head_end
        if tail > 0:  # body bytes that arrived with the head: move them, wipe the copy
            count = min(tail, length)
            with intake.body.memoryview() as view:
                view[:count] = intake.head[intake.head_end:intake.head_end + count]
            intake.body_received = count
            with memoryview(intake.head)[intake.head_end:intake.head_len] as spare:
                wipe_bytearray(spare)
            intake.head_len = intake.head_end
        if expect_continue and intake.body_received < length:
            self._send_quietly(intake.conn, b"HTTP/1.1 100 Continue\r\n\r\n")

    def _reserve(self, intake: Intake, length: int) -> None:
        limits = self.limits
        with self.budget_lock:
            if not intake.kiosk:
                if self.bodies_per_address.get(intake.address, 0) >= (
                        limits.max_bodies_per_address):
                    raise _RefusedError(json_error(
                        429, "Too Many Requests", "too_many_uploads", "This device is "
                        "already sending photos to the booth.", "Wait for the first photo to "
                        "arrive, then send the next.", 5))
                if self.bytes_lan + length > limits.body_budget_bytes - limits.kiosk_reserve_bytes:
                    raise _RefusedError(self._busy())
            if self.bytes_total + length > limits.body_budget_bytes:
                raise _RefusedError(self._busy())
            self.bytes_total += length
            if not intake.kiosk:
                self.bytes_lan += length
                self.bodies_per_address[intake.address] = (
                    self.bodies_per_address.get(intake.address, 0) + 1)
            intake.bytes_reserved = length

    def _unreserve(self, intake: Intake) -> None:
        with self.budget_lock:
            if not intake.bytes_reserved:
                return
            self.bytes_total -= intake.bytes_reserved
            if not intake.kiosk:
                self.bytes_lan -= intake.bytes_reserved
                left = self.bodies_per_address.get(intake.address, 1) - 1
                if left > 0:
                    self.bodies_per_address[intake.address] = left
                else:
                    self.bodies_per_address.pop(intake.address, None)
            intake.bytes_reserved = 0

    @staticmethod
    def _busy() -> bytes:
        return json_error(503, "Service Unavailable", "busy", "The booth is receiving other "
                          "photos right now.", "Try again in a few seconds.", 3)

    @staticmethod
    def _head_too_large() -> bytes:
        return json_error(431, "Request Header Fields Too Large", "headers_too_large",
                          "The request's headers are too large.",
                          "Open the booth's page again; clear this site's data if it repeats.")

    # -- handing over, refusing, timing out ------------------------------------------------

    def _dispatch(self, intake: Intake) -> None:
        """The whole request is here: give it to a thread."""
        conn = intake.conn
        self._forget_intake(intake)
        head = bytes(intake.head[:intake.head_end])
        wipe_bytearray(intake.head)
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            conn.initialized = True
        conn.parser.unreader.unread(head)
        conn.data_ready = True
        conn.ephemera_body = intake
        conn.ephemera_ready = True
        self.enqueue_req(conn)

    def _forget_intake(self, intake: Intake) -> None:
        if self.intakes.pop(id(intake.conn), None) is not None:
            left = self.per_address.get(intake.address, 1) - 1
            if left > 0:
                self.per_address[intake.address] = left
            else:
                self.per_address.pop(intake.address, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(intake.conn.sock)

    def _drop_body(self, intake: Intake) -> None:
        if intake.body is not None:
            intake.body.release()
            intake.body = None
        self._unreserve(intake)
        wipe_bytearray(intake.head)

    def _refuse(self, intake: Intake, answer: bytes) -> None:
        self._forget_intake(intake)
        self._drop_body(intake)
        self._answer_and_close(intake.conn, answer)

    def _close_intake(self, intake: Intake) -> None:
        self._forget_intake(intake)
        self._drop_body(intake)
        self._close(intake.conn)

    def _answer_and_close(self, conn: TConn, answer: bytes) -> None:
        self._send_quietly(conn, answer)
        self._close(conn)

    @staticmethod
    def _send_quietly(conn: TConn, data: bytes) -> None:
        with contextlib.suppress(OSError, ValueError):
            conn.sock.send(data)  # a small answer on a non-blocking socket: best effort

    def _close(self, conn: TConn) -> None:
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        limits = self.limits
        for intake in list(self.intakes.values()):
            if intake.body is None:
                late = now - intake.started > limits.head_timeout_s
                if late and intake.head_len == 0:  # an idle keep-alive or silent connection
                    self._close_intake(intake)
                    continue
            else:
                elapsed = now - intake.body_started
                late = (now - intake.last_byte > limits.idle_timeout_s or (
                    elapsed > limits.body_grace_s and intake.body_received
                    < limits.min_body_rate * (elapsed - limits.body_grace_s)))
            if late:
                self._refuse(intake, json_error(408, "Request Timeout", *TIMEOUT_408))

    # -- in the thread ---------------------------------------------------------------------

    def handle_request(self, req: Any, conn: TConn) -> Any:
        intake: Intake | None = getattr(conn, "ephemera_body", None)
        conn.ephemera_body = None
        conn.sock.settimeout(self.limits.send_timeout_s)
        if intake is not None and intake.body is not None:
            req.body = PrefetchedBody(intake.body)
            req._expected_100_continue = False  # answered by the loop already
        _handling.conn = conn
        try:
            return super().handle_request(req, conn)
        except ConnectionHandedOverError:
            return False  # finish_request forgets the connection (see there)
        finally:
            _handling.conn = None
            if intake is not None:
                buffer = intake.body
                intake.body = None
                if buffer is not None and buffer.owner.startswith(BODY_OWNER_PREFIX):
                    buffer.release()  # not adopted by a job: wipe it now
                self._unreserve(intake)

    def finish_request(self, conn: TConn, fs: Any) -> None:
        """A connection handed over (a progress stream) is no longer the worker's to close."""
        if getattr(conn, "ephemera_handed_over", False):
            self.nr_conns -= 1
            return
        super().finish_request(conn, fs)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's own refusals, as the booth's JSON instead of an HTML page."""
        status, reason, code, message = _describe(exc)
        if status >= 500:
            self.log.error("error handling a request: %s", type(exc).__name__)
        else:
            self.log.info("refused a malformed request: %s", type(exc).__name__)
        try:
            client.setblocking(True)
            client.settimeout(2.0)
            client.sendall(json_error(status, reason, code, message,
                                      "Use the booth's own page or app." if status < 500 else
                                      "Try again; if it keeps happening, tell the operator."))
        except (OSError, ValueError):
            pass


def _describe(exc: BaseException) -> tuple[int, str, str, str]:
    bad = (400, "Bad Request", "bad_request")
    table: list[tuple[type[BaseException] | tuple[type[BaseException], ...],
                      tuple[int, str, str], str]] = [
        (http_errors.LimitRequestLine, (414, "URI Too Long", "uri_too_long"),
         "The address is too long."),
        (http_errors.LimitRequestHeaders,
         (431, "Request Header Fields Too Large", "headers_too_large"),
         "The request's headers are too large."),
        (http_errors.InvalidRequestMethod, bad, "The request method is not valid."),
        (http_errors.UnsupportedTransferCoding, (501, "Not Implemented", "not_implemented"),
         "This transfer coding is not supported; send a Content-Length."),
        (http_errors.ExpectationFailed, (417, "Expectation Failed", "expectation_failed"),
         "The request's Expect header cannot be met."),
        (http_errors.ForbiddenProxyRequest, (403, "Forbidden", "forbidden"),
         "This request is not allowed."),
        (ssl.SSLError, (403, "Forbidden", "tls_error"), "The secure connection failed."),
        ((http_errors.ParseException, socket.timeout), bad,
         "The request is malformed (its request line or headers are not valid HTTP/1.1)."),
    ]
    for kinds, (status, reason, code), message in table:
        if isinstance(exc, kinds):
            return status, reason, code, message
    return (500, "Internal Server Error", "internal_error",
            "Something went wrong while answering this request.")
