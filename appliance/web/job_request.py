"""Read an effect job's small JSON body without Werkzeug's buffering, and check its shape.

Why not ``request.get_json()``: it goes through ``get_data()``, which this API never calls (see
``appliance.web.upload``); a job request is a few hundred bytes, read with one bounded
``request.stream.read`` after its length is checked from the headers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Request

from appliance.errors import UserFacingError

MAX_JOB_REQUEST_BYTES = 16 << 10
MAX_PHOTOS = 8


@dataclass(frozen=True)
class JobRequest:
    effect: str
    photos: list[str]
    params: dict[str, Any]


def _bad(message: str) -> UserFacingError:
    return UserFacingError(
        "bad_job_request", message, status=400,
        remedy='Send JSON like {"effect": "headshot", "photos": ["<photo_id>"], '
               '"params": {}} with Content-Type application/json.')


def read_job_request(request: Request) -> JobRequest:
    if (request.mimetype or "").lower() != "application/json":
        raise UserFacingError(
            "unsupported_format", "A job is described in JSON.", status=415,
            remedy="POST the photo to /api/photos first, then the job to /api/jobs as "
                   "application/json naming the photo ids.")
    length = request.content_length
    if length is None or request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        raise UserFacingError("length_required", "The request must say how big it is.",
                              status=411, remedy="Send a Content-Length header.")
    if length > MAX_JOB_REQUEST_BYTES:
        raise UserFacingError("too_many_bytes", "The job request is too large.", status=413,
                              remedy=f"A job request fits in {MAX_JOB_REQUEST_BYTES} bytes.")
    raw = request.stream.read(length)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise _bad("The job request is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _bad("The job request must be a JSON object.")
    unknown = sorted(set(body) - {"effect", "photos", "params"})
    if unknown:
        raise _bad(f"Unknown field(s) in the job request: {', '.join(unknown)}.")
    effect, photos, params = body.get("effect"), body.get("photos"), body.get("params", {})
    if not isinstance(effect, str) or not effect:
        raise _bad("'effect' must name an effect (see GET /api/effects).")
    if (not isinstance(photos, list) or not photos or len(photos) > MAX_PHOTOS
            or not all(isinstance(p, str) and p for p in photos)):
        raise _bad(f"'photos' must be a list of 1 to {MAX_PHOTOS} photo ids.")
    if len(set(photos)) != len(photos):
        raise UserFacingError("duplicate_photo", "The same photo is named twice.", status=400,
                              remedy="Name each photo once; take a second photo if the effect "
                                     "needs two.")
    if not isinstance(params, dict):
        raise _bad("'params' must be a JSON object of parameter names and values.")
    return JobRequest(effect, list(photos), dict(params))
