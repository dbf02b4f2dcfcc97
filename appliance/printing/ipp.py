"""A minimal IPP/2.0 client (RFC 8010 encoding, RFC 8011 operations): what the booth needs.

Why not a library: PyPI's maintained IPP client (pyipp) is asyncio/aiohttp and builds each
request, document included, by concatenating ``bytes``: the guest's print would sit in
immutable copies that can never be wiped. Here only the small attribute header is ``bytes``;
the document goes to the socket straight from its secure buffer (``sendall`` of a memoryview),
with ``Content-Length`` so nothing is buffered on the way. Two operations are implemented:
Get-Printer-Attributes and Print-Job.
"""

from __future__ import annotations

import http.client
import ssl
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Operation ids (RFC 8011 5.4)
PRINT_JOB = 0x0002
GET_PRINTER_ATTRIBUTES = 0x000B

# Delimiter tags
OPERATION = 0x01
JOB = 0x02
END = 0x03
PRINTER = 0x04
UNSUPPORTED = 0x05

# Value tags
INTEGER, BOOLEAN, ENUM = 0x21, 0x22, 0x23
RESOLUTION = 0x32
TEXT, NAME, KEYWORD, URI, CHARSET, LANGUAGE, MIME = 0x41, 0x42, 0x44, 0x45, 0x47, 0x48, 0x49
STRING_TAGS = {0x41, 0x42, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49}

PRINTER_STATES = {3: "idle", 4: "processing", 5: "stopped"}


SERVER_BUSY = 0x0507


class IppError(RuntimeError):
    """The printer could not be reached or refused the request."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class IppResponse:
    status: int
    request_id: int
    groups: list[tuple[int, dict[str, list[Any]]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status < 0x0100  # successful-ok and its "-ignored-or-substituted" kin

    def group(self, tag: int) -> dict[str, list[Any]]:
        merged: dict[str, list[Any]] = {}
        for group_tag, attributes in self.groups:
            if group_tag == tag:
                merged.update(attributes)
        return merged


Attribute = tuple[int, str, Any]  # (value tag, name, value or list of values)


def _encode_value(tag: int, value: Any) -> bytes:
    if tag in (INTEGER, ENUM):
        return struct.pack(">i", int(value))
    if tag == BOOLEAN:
        return b"\x01" if value else b"\x00"
    if tag == RESOLUTION:
        x, y, units = value
        return struct.pack(">iib", x, y, units)
    return str(value).encode("utf-8")


def encode_request(operation: int, request_id: int,
                   groups: Iterable[tuple[int, Iterable[Attribute]]]) -> bytes:
    """The header of an IPP request: version 2.0, operation, id, attribute groups, end tag."""
    out = bytearray(struct.pack(">bbhi", 2, 0, operation, request_id))
    for group_tag, attributes in groups:
        out.append(group_tag)
        for tag, name, value in attributes:
            values = value if isinstance(value, list) else [value]
            for index, item in enumerate(values):
                label = name.encode("ascii") if index == 0 else b""
                data = _encode_value(tag, item)
                out += struct.pack(">bh", tag, len(label)) + label
                out += struct.pack(">h", len(data)) + data
    out.append(END)
    return bytes(out)


def _decode_value(tag: int, data: bytes) -> Any:
    if tag in (INTEGER, ENUM) and len(data) == 4:
        return struct.unpack(">i", data)[0]
    if tag == BOOLEAN and len(data) == 1:
        return data != b"\x00"
    if tag == RESOLUTION and len(data) == 9:
        return struct.unpack(">iib", data)
    if tag in STRING_TAGS:
        return data.decode("utf-8", "replace")
    return data


def decode_response(message: bytes) -> IppResponse:
    """Parse a response: status, request id and each group's attributes (name -> values)."""
    if len(message) < 9:
        raise IppError("the printer sent a truncated IPP response")
    _major, _minor, status, request_id = struct.unpack(">bbhi", message[:8])
    response = IppResponse(status, request_id)
    pos = 8
    current: dict[str, list[Any]] | None = None
    last_name = ""
    while pos < len(message):
        tag = message[pos]
        pos += 1
        if tag == END:
            break
        if tag < 0x10:  # a new group
            current = {}
            response.groups.append((tag, current))
            continue
        if pos + 2 > len(message):
            raise IppError("the printer sent a malformed IPP response")
        (name_len,) = struct.unpack(">h", message[pos:pos + 2])
        pos += 2
        name = message[pos:pos + name_len].decode("ascii", "replace")
        pos += name_len
        (value_len,) = struct.unpack(">h", message[pos:pos + 2])
        pos += 2
        value = _decode_value(tag, message[pos:pos + value_len])
        pos += value_len
        if current is None:
            raise IppError("the printer sent an attribute outside any group")
        if name:
            last_name = name
            current[name] = [value]
        elif last_name:
            current.setdefault(last_name, []).append(value)
    return response


class IppClient:
    """Talks to one printer URI (ipp://host:port/path or ipps://...)."""

    def __init__(self, uri: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(uri)
        if parts.scheme not in ("ipp", "ipps", "http", "https") or not parts.hostname:
            raise ValueError(f"{uri!r} is not an ipp:// or ipps:// printer URI")
        self.uri = uri
        self.secure = parts.scheme in ("ipps", "https")
        self.host = parts.hostname
        self.port = parts.port or 631
        self.path = parts.path or "/"
        self.timeout_s = timeout_s
        self._request_id = 0

    def _connection(self) -> http.client.HTTPConnection:
        if self.secure:
            # Printers present self-signed certificates; the link is the booth's own LAN/USB.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout_s,
                                               context=context)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)

    def request(self, operation: int, groups: list[tuple[int, list[Attribute]]],
                document: memoryview | None = None) -> IppResponse:
        self._request_id += 1
        header = encode_request(operation, self._request_id, groups)
        length = len(header) + (document.nbytes if document is not None else 0)
        connection = self._connection()
        try:
            connection.putrequest("POST", self.path, skip_accept_encoding=True)
            connection.putheader("Content-Type", "application/ipp")
            connection.putheader("Content-Length", str(length))
            connection.endheaders()
            connection.send(header)
            if document is not None:
                connection.send(document)  # sendall of the secure buffer: no copy
            reply = connection.getresponse()
            body = reply.read()
            if reply.status != 200:
                raise IppError(f"the printer answered HTTP {reply.status}")
        except (OSError, http.client.HTTPException) as exc:
            raise IppError(f"cannot reach the printer at {self.host}:{self.port}: {exc}") from exc
        finally:
            connection.close()
        return decode_response(body)

    def _operation_attributes(self) -> list[Attribute]:
        return [(CHARSET, "attributes-charset", "utf-8"),
                (LANGUAGE, "attributes-natural-language", "en"),
                (URI, "printer-uri", self.uri)]

    def printer_attributes(self) -> dict[str, list[Any]]:
        asked = ["printer-state", "printer-state-reasons", "printer-state-message",
                 "printer-is-accepting-jobs", "document-format-supported", "media-supported",
                 "media-ready", "printer-resolution-supported", "printer-make-and-model",
                 "marker-levels", "marker-names", "print-scaling-supported"]
        response = self.request(GET_PRINTER_ATTRIBUTES, [
            (OPERATION, [*self._operation_attributes(),
                         (KEYWORD, "requested-attributes", asked)])])
        if not response.ok:
            raise IppError(f"the printer refused Get-Printer-Attributes (0x{response.status:04x})")
        return response.group(PRINTER)

    def print_job(self, document: memoryview, document_format: str,
                  job_attributes: list[Attribute]) -> int:
        """Send one document; returns the printer's job id."""
        response = self.request(PRINT_JOB, [
            (OPERATION, [*self._operation_attributes(),
                         (NAME, "requesting-user-name", "ephemera"),
                         (NAME, "job-name", "ephemera print"),
                         (MIME, "document-format", document_format)]),
            (JOB, job_attributes)], document)
        if not response.ok:
            raise IppError(f"the printer refused the job (0x{response.status:04x})",
                           response.status)
        job_id = response.group(JOB).get("job-id", [0])[0]
        return int(job_id) if isinstance(job_id, int) else 0
