"""Read an upload's raw body straight into a secure buffer.

Why not ``request.files`` / ``request.data`` / ``request.get_data()``: Werkzeug's multipart parser
spools parts over 500 KiB to a temporary file (disk) and both paths build immutable ``bytes``
that can never be wiped. The browser POSTs the image as the raw body instead, and this module
reads it with ``request.stream.readinto`` into memory the job owns. The length is checked before
a single byte is read: no Content-Length is 411, too many bytes is 413.
"""

from __future__ import annotations

from typing import Any

from flask import Request

from appliance.errors import UserFacingError
from appliance.secure.buffers import REGISTRY, SecureBuffer
from appliance.web.guarded_worker import adopt_request_body

ACCEPTED_TYPES = ("image/jpeg", "image/png", "image/webp")
READ_STEP = 1 << 20  # bounded reads: each step's transient copy in gunicorn stays small


def check_upload_headers(request: Request, max_bytes: int) -> int:
    """Validate type and length from the headers alone; returns the body length."""
    content_type = (request.mimetype or "").lower()
    if content_type not in ACCEPTED_TYPES:
        raise UserFacingError(
            "unsupported_format", "Send a JPEG, PNG or WebP photo.", status=415,
            remedy="POST the image itself as the body with Content-Type image/jpeg, image/png "
                   "or image/webp (not a form).")
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked" or (
            request.content_length is None):
        raise UserFacingError(
            "length_required", "The upload must say how big it is.", status=411,
            remedy="Send a Content-Length header (browsers do this for a Blob body).")
    length = int(request.content_length)
    if length == 0:
        raise UserFacingError("empty_upload", "The upload is empty.", status=400,
                              remedy="Choose or take a photo, then send it again.")
    if length > max_bytes:
        raise UserFacingError(
            "too_many_bytes", f"The photo is larger than {max_bytes // (1 << 20)} MiB.",
            status=413, remedy="Send a smaller photo (a phone camera's photo fits).")
    return length


def read_body(request: Request, length: int, owner: str) -> SecureBuffer:
    """Read exactly ``length`` bytes into a new secure buffer of ``owner``.

    A body that ends early is a truncated upload (400); the buffer is released before raising,
    so nothing of a refused upload survives. Under the booth's server the body is already in a
    secure buffer (read there by the event loop): the job adopts it, no copy is made.
    """
    adopted = adopt_request_body(request.environ, length, owner)
    if adopted is not None:
        return adopted
    buffer = REGISTRY.allocate(length, owner=owner, label="upload")
    view = buffer.memoryview()
    received = 0
    try:
        stream: Any = request.stream  # Werkzeug's LimitedStream: a RawIOBase with readinto
        while received < length:
            step = min(READ_STEP, length - received)
            count = stream.readinto(view[received:received + step])
            if not count:
                break
            received += count
    except (OSError, ValueError):
        received = -1
    finally:
        view.release()
    if received != length:
        buffer.release()
        raise UserFacingError("truncated_upload", "The upload stopped before the whole photo "
                              "arrived.", status=400, remedy="Check the connection and send the "
                              "photo again.")
    return buffer
