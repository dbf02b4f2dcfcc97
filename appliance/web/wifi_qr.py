"""The booth's own Wi-Fi, read for the kiosk's "join the booth's Wi-Fi" QR code.

Why read the file at each request (not at start-up): provisioning writes or removes
``/etc/ephemera/wifi.json`` when the operator turns the booth's access point on or off, and the
kiosk follows without a restart. Why a missing or broken file is never an error for the guest:
the Wi-Fi QR is a convenience beside the download QR; without it the kiosk shows the download
QR alone. A broken file is logged once per distinct problem, so a kiosk that asks on every
result screen does not flood the journal.
"""

from __future__ import annotations

import json
import logging
import threading

import segno.helpers

LOG = logging.getLogger(__name__)
MAX_FILE_BYTES = 4 << 10
_reported: set[str] = set()
_reported_lock = threading.Lock()


def _report_once(problem: str) -> None:
    with _reported_lock:
        if problem in _reported:
            return
        _reported.add(problem)
    LOG.warning("no Wi-Fi QR code on the kiosk: %s", problem)


def _unescape(text: str) -> str:
    r"""Undo the ``WIFI:`` format's backslash escapes (``\;`` ``\,`` ``\:`` ``\"`` ``\\``)."""
    out, escaped = [], False
    for char in text:
        if escaped or char != "\\":
            out.append(char)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def _fields(payload: str) -> dict[str, str]:
    """``WIFI:T:WPA;S:x;P:y;;`` -> {"T": "WPA", "S": "x", "P": "y"}, escapes undone."""
    body = payload[len("WIFI:"):]
    fields: dict[str, str] = {}
    start, escaped = 0, False
    for i, char in enumerate(body):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ";":
            key, sep, value = body[start:i].partition(":")
            if sep:
                fields[key] = _unescape(value)
            start = i + 1
    return fields


def wifi_payload(path: str) -> str | None:
    """The ``WIFI:`` text to show, rebuilt with segno from the provisioned file; None if none.

    Rebuilding (rather than showing the file's text as it is) means the kiosk only ever shows a
    well-formed Wi-Fi code: a file whose ``qr`` lacks an SSID or a password shows nothing.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        _report_once(f"{path} cannot be read ({exc.strerror or exc})")
        return None
    try:
        data = json.loads(raw) if len(raw) <= MAX_FILE_BYTES else None
    except (UnicodeDecodeError, ValueError):
        data = None
    qr = data.get("qr") if isinstance(data, dict) else None
    if not isinstance(qr, str) or not qr.startswith("WIFI:") or not qr.endswith(";;"):
        _report_once(f"{path} is not the booth's Wi-Fi as provisioning writes it "
                     "(a JSON object whose 'qr' is the WIFI: text)")
        return None
    fields = _fields(qr)
    ssid, password = fields.get("S", ""), fields.get("P", "")
    if not ssid or not password or fields.get("T", "WPA") != "WPA":
        _report_once(f"{path}: its 'qr' names no WPA network with a password")
        return None
    hidden = fields.get("H", "false").lower() == "true"
    data_text: str = segno.helpers.make_wifi_data(ssid=ssid, password=password,
                                                  security="WPA", hidden=hidden)
    return data_text
