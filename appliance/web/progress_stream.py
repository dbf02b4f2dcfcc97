"""Progress as server-sent events, answered by a request thread and served by the hub.

Why this split: Flask checks the request as for any other route (access policy, session token,
the job's owner) and builds the answer's headers (security headers, ``no-store``, HSTS on the
LAN); then, instead of writing a body from the request thread for minutes, the worker hands the
connection to the one progress hub of the process (``appliance.web.progress_hub``) and forgets
it. The answer is close-delimited (``Connection: close``, no length, no chunking): the stream is
the connection.

Without the booth's own worker (the Flask test client, another server) nothing can be handed
over: the stream then sends the job's status once and ends, and the page polls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, current_app, request

from appliance.jobs.job import Job
from appliance.web.access import on_lan
from appliance.web.guarded_worker import ConnectionHandedOverError, hand_over_connection, is_kiosk
from appliance.web.progress_hub import RETRY, ProgressHub, Render, Ticket, event

MEDIA_TYPE = "text/event-stream"


class DetachableStream:
    """The body of an event-stream answer: handed to the hub, or (without the booth's worker)
    one event sent from the request thread."""

    def __init__(self, hub: ProgressHub, ticket: Ticket, job: Job, render: Render) -> None:
        self.hub, self.ticket, self.job, self.render = hub, ticket, job, render
        self.adopted = False
        self.closed = False

    def hand_over(self, sock: Any, head: bytes) -> None:
        self.adopted = True
        self.hub.adopt(self.ticket, sock, head, self.job, self.render)

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield RETRY + event(self.render(self.job))
        finally:  # sent (or abandoned): the place is free whether or not the server calls close
            self.close()

    def close(self) -> None:
        """WSGI's end of the answer: the reserved place goes back unless the hub has it."""
        if not self.adopted and not self.closed:
            self.closed = True
            self.hub.give_back(self.ticket)


def progress_stream(job: Job, render: Render) -> Any:
    """The event-stream answer for ``job`` (whose owner the caller has checked)."""
    if request.method == "HEAD":  # no stream, no place taken: the headers only
        return Response(b"", mimetype=MEDIA_TYPE)
    hub: ProgressHub = current_app.extensions["ephemera.progress"]
    address = request.remote_addr or ""
    ticket = hub.reserve(address, kiosk=not on_lan() and is_kiosk(address))
    response = Response(DetachableStream(hub, ticket, job, render), mimetype=MEDIA_TYPE,
                        direct_passthrough=True)
    response.headers["Cache-Control"] = "no-store"
    return response


def _head(status: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}"]
    lines += [f"{name}: {value}" for name, value in headers
              if name.lower() not in ("connection", "content-length", "transfer-encoding")]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class StreamHandoff:
    """WSGI middleware: an answer whose body is a ``DetachableStream`` leaves the worker."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return start_response(status, headers, exc_info)

        body = self.app(environ, capture)
        if isinstance(body, DetachableStream) and started:
            sock = environ.get("gunicorn.socket")
            if sock is not None and hand_over_connection(sock):
                body.hand_over(sock, _head(started[0], started[1]))
                raise ConnectionHandedOverError()
        return body


def install_progress_streams(app: Flask, manager: Any) -> ProgressHub:
    """One hub per app (per worker process), woken by the job manager."""
    hub = ProgressHub()
    manager.watch(hub.wake)
    app.extensions["ephemera.progress"] = hub
    app.wsgi_app = StreamHandoff(app.wsgi_app)  # type: ignore[method-assign]
    return hub
