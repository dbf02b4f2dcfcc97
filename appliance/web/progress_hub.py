"""One thread per process that streams job progress to every waiting screen.

Why: a phone waiting for its picture used to poll its job's status every 600 ms, and a stream
answered from a request thread would hold one of gunicorn's few threads for the whole wait:
ten phones would take the booth offline. Here a request thread only checks the request (session,
job, limits) and writes nothing; the worker then hands the connection's socket over (see
``appliance.web.progress_stream``) and forgets it, and this hub owns every open stream with one
selector and non-blocking writes (TLS ones too: ``SSLWantWriteError`` waits for the socket).

- Woken by the job manager on every change of a job's state, progress, outputs or queue place;
  each subscribed job's status is rendered once per wake-up (at most every ``min_interval_s``)
  and sent to each of its streams whose last event differs.
- A comment line every ``heartbeat_s`` keeps proxies and phones from dropping an idle stream.
- A stream ends after the job's last state (done or failed; ``event: gone`` with the status
  route's 404 body once the job is released) or after ``lifetime_s``; the page reconnects or
  polls.
- At most ``max_total`` streams, ``max_per_address`` per LAN address (the kiosk, on loopback,
  is not counted per address); a reader that leaves more than ``max_buffered_bytes`` unread or
  accepts nothing for ``stall_timeout_s`` is dropped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import UserFacingError
from appliance.jobs.job import Job, JobState

log = logging.getLogger("ephemera.progress")

Render = Callable[[Job], dict[str, Any]]
HEARTBEAT = b": keep-alive\n\n"
RETRY = b"retry: 2000\n\n"  # EventSource's reconnect delay, should a stream drop
CHUNK = 16 << 10
END_STATES = (JobState.DONE, JobState.FAILED)


@dataclass(frozen=True)
class StreamLimits:
    """How many streams the hub holds, and how long and how far behind each may be."""

    heartbeat_s: float = 15.0
    lifetime_s: float = 600.0
    max_total: int = 400
    max_per_address: int = 6
    max_buffered_bytes: int = 64 << 10
    stall_timeout_s: float = 20.0
    min_interval_s: float = 0.1


def event(body: dict[str, Any], name: str = "") -> bytes:
    """One server-sent event carrying ``body`` as JSON (one line: JSON has no raw newlines)."""
    head = f"event: {name}\n" if name else ""
    return (head + "data: " + json.dumps(body, separators=(",", ":")) + "\n\n").encode()


def gone_body() -> dict[str, Any]:
    """What the status route answers (404) once the job is released."""
    return {"error": "job_not_found", "message": "There is no such job for this session. It "
            "may have expired or been deleted.", "remedy": "Start again with a new photo."}


@dataclass(frozen=True)
class Ticket:
    """A stream's place, reserved before the answer starts (given back if it never starts)."""

    address: str
    kiosk: bool


@dataclass
class Subscriber:
    sock: Any
    ticket: Ticket
    job: Job
    render: Render
    out: bytearray
    opened: float
    next_beat: float
    last_progress: float
    last_body: bytes = b""
    inflight: bytes | None = None  # a TLS write to retry with the very same bytes
    mask: int = 0
    closing: bool = False
    read_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class ProgressHub:
    """Every open progress stream of this process, served by one thread."""

    def __init__(self, limits: StreamLimits | None = None) -> None:
        self.limits = limits or StreamLimits()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._total = 0
        self._incoming: list[Subscriber] = []
        self._subscribers: dict[int, Subscriber] = {}
        self._dirty = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r, self._wake_w = -1, -1
        self.dropped_slow = 0

    # -- from request threads -----------------------------------------------------------------

    def reserve(self, address: str, kiosk: bool) -> Ticket:
        """A place for one more stream, or 503 (the booth's total) / 429 (this device's)."""
        limits = self.limits
        with self._lock:
            if self._total >= limits.max_total:
                raise UserFacingError("busy", "The booth is sending progress to many screens "
                                      "right now.", status=503, retry_after_s=5,
                                      remedy="The page checks its picture another way; wait.")
            if not kiosk and self._counts.get(address, 0) >= limits.max_per_address:
                raise UserFacingError("too_many_streams", "This device has too many progress "
                                      "streams open to the booth.", status=429, retry_after_s=5,
                                      remedy="Close other tabs of the booth's page.")
            self._total += 1
            if not kiosk:
                self._counts[address] = self._counts.get(address, 0) + 1
        return Ticket(address, kiosk)

    def give_back(self, ticket: Ticket) -> None:
        with self._lock:
            self._total -= 1
            if not ticket.kiosk:
                left = self._counts.get(ticket.address, 1) - 1
                if left > 0:
                    self._counts[ticket.address] = left
                else:
                    self._counts.pop(ticket.address, None)

    def adopt(self, ticket: Ticket, sock: Any, head: bytes, job: Job, render: Render) -> None:
        """Take over a connection whose answer starts with ``head`` (status line, headers)."""
        sock.setblocking(False)
        now = time.monotonic()
        subscriber = Subscriber(sock, ticket, job, render, bytearray(head + RETRY), now,
                                now + self.limits.heartbeat_s, now)
        with self._lock:
            stopping = self._stopping
            if not stopping:
                self._incoming.append(subscriber)
                self._dirty = True
                self._start_locked()
        if stopping:  # the worker is exiting: nothing will serve this stream
            self._close_socket(sock)
            self.give_back(ticket)
            return
        self._poke()

    def wake(self, _job_id: str = "") -> None:
        """A job changed (called by the job manager, from any thread; never blocks)."""
        if self._thread is None:
            return
        self._dirty = True
        self._poke()

    def count(self) -> int:
        """Open and reserved streams (for the admin page and tests)."""
        with self._lock:
            return self._total

    def close(self) -> None:
        """Stop the thread and close every stream (the worker's exit)."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._poke()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # -- the hub's thread -----------------------------------------------------------------------

    def _start_locked(self) -> None:
        if self._thread is not None:
            return
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="ephemera-progress", daemon=True)
        self._thread.start()

    def _poke(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"\0")

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None
        last_refresh = 0.0
        try:
            while not self._stopping:
                now = time.monotonic()
                wait = 0.5
                if self._dirty:
                    wait = max(0.0, last_refresh + self.limits.min_interval_s - now)
                for key, mask in selector.select(wait):
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError, OSError):
                            os.read(self._wake_r, 4096)
                        continue
                    subscriber: Subscriber = key.data
                    if mask & selectors.EVENT_READ:
                        self._on_readable(subscriber)
                    if mask & selectors.EVENT_WRITE and subscriber.sock.fileno() >= 0:
                        self._flush(subscriber)
                self._take_incoming()
                now = time.monotonic()
                if self._dirty and now - last_refresh >= self.limits.min_interval_s:
                    self._dirty = False
                    last_refresh = now
                    self._refresh()
                self._timers(now)
        except Exception as exc:  # never let a bug leave sockets open and nobody serving them
            log.error("progress hub stopped: %s", type(exc).__name__)
        finally:
            for subscriber in list(self._subscribers.values()):
                self._drop(subscriber)
            with self._lock:
                incoming, self._incoming = self._incoming, []
            for subscriber in incoming:
                self._close_socket(subscriber.sock)
                self.give_back(subscriber.ticket)
            selector.close()
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._wake_r = self._wake_w = -1

    def _take_incoming(self) -> None:
        with self._lock:
            incoming, self._incoming = self._incoming, []
        for subscriber in incoming:
            fd = subscriber.sock.fileno()
            if fd < 0:  # closed before the hub got to it
                self.give_back(subscriber.ticket)
                continue
            self._subscribers[fd] = subscriber
            self._send_status(subscriber, {})
            self._update_interest(subscriber)

    def _refresh(self) -> None:
        rendered: dict[str, tuple[JobState, bytes]] = {}
        for subscriber in list(self._subscribers.values()):
            if subscriber.closing:
                continue
            self._send_status(subscriber, rendered)
            self._update_interest(subscriber)

    def _send_status(self, subscriber: Subscriber,
                     rendered: dict[str, tuple[JobState, bytes]]) -> None:
        """Queue the job's status if it changed since the last event; end at its last state."""
        job = subscriber.job
        if job.id not in rendered:
            state = job.state
            if state is JobState.RELEASED:
                payload = event(gone_body(), "gone")
            else:
                try:
                    payload = event(subscriber.render(job))
                except Exception as exc:
                    log.error("progress render failed: %s", type(exc).__name__)
                    payload = event(gone_body(), "gone")
                    state = JobState.RELEASED
            rendered[job.id] = (state, payload)
        state, payload = rendered[job.id]
        if payload != subscriber.last_body:
            subscriber.last_body = payload
            self._append(subscriber, payload)
        if state in END_STATES or state is JobState.RELEASED:
            subscriber.closing = True

    def _append(self, subscriber: Subscriber, data: bytes) -> None:
        if len(subscriber.out) + len(data) > self.limits.max_buffered_bytes:
            self.dropped_slow += 1
            self._drop(subscriber)  # a reader this far behind is not reading
            return
        subscriber.out += data

    def _update_interest(self, subscriber: Subscriber) -> None:
        fd = subscriber.sock.fileno()
        if fd < 0 or self._subscribers.get(fd) is not subscriber:
            return
        if subscriber.closing and not subscriber.out and subscriber.inflight is None:
            self._drop(subscriber)
            return
        mask = selectors.EVENT_READ
        if subscriber.out or subscriber.inflight is not None:
            mask |= selectors.EVENT_WRITE
        if mask == subscriber.mask:
            return
        assert self._selector is not None
        if subscriber.mask:
            self._selector.modify(subscriber.sock, mask, subscriber)
        else:
            self._selector.register(subscriber.sock, mask, subscriber)
        subscriber.mask = mask

    def _flush(self, subscriber: Subscriber) -> None:
        sock = subscriber.sock
        while subscriber.out or subscriber.inflight is not None:
            chunk = subscriber.inflight or bytes(subscriber.out[:CHUNK])
            try:
                sent = sock.send(chunk)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError,
                    ssl.SSLWantReadError):
                subscriber.inflight = chunk if isinstance(sock, ssl.SSLSocket) else None
                break
            except (OSError, ValueError):
                self._drop(subscriber)
                return
            subscriber.inflight = None
            del subscriber.out[:sent]
            subscriber.last_progress = time.monotonic()
        self._update_interest(subscriber)

    def _on_readable(self, subscriber: Subscriber) -> None:
        """A stream's client sends nothing after its request: EOF or a reset ends it."""
        try:
            data = subscriber.sock.recv(4096)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                ssl.SSLWantWriteError):
            return
        except (OSError, ValueError):
            self._drop(subscriber)
            return
        subscriber.read_bytes += len(data)
        if not data or subscriber.read_bytes > 16 << 10:
            self._drop(subscriber)

    def _timers(self, now: float) -> None:
        limits = self.limits
        for subscriber in list(self._subscribers.values()):
            pending = bool(subscriber.out) or subscriber.inflight is not None
            if pending and now - subscriber.last_progress > limits.stall_timeout_s:
                self.dropped_slow += 1
                self._drop(subscriber)
                continue
            if now - subscriber.opened > limits.lifetime_s and not subscriber.closing:
                subscriber.closing = True  # the page reconnects (or polls) for a fresh one
            elif now >= subscriber.next_beat and not pending:
                subscriber.next_beat = now + limits.heartbeat_s
                self._append(subscriber, HEARTBEAT)
            if subscriber.sock.fileno() >= 0:
                self._update_interest(subscriber)

    def _drop(self, subscriber: Subscriber) -> None:
        fd = subscriber.sock.fileno()
        if fd >= 0 and self._subscribers.get(fd) is subscriber:
            del self._subscribers[fd]
            if subscriber.mask and self._selector is not None:
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self._selector.unregister(subscriber.sock)
            subscriber.mask = 0
            self.give_back(subscriber.ticket)
        self._close_socket(subscriber.sock)

    @staticmethod
    def _close_socket(sock: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError, ValueError):
            sock.close()
