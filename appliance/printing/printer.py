"""The booth's printer: its state for the screens, and printing with a per-session limit.

Why the state is read from the printer itself (Get-Printer-Attributes): "out of paper" and
"offline" are what go unnoticed at events. The kiosk offers the print button only while
``state()["ready"]`` is true and shows ``problems`` otherwise; the admin page shows the raw
reasons. Readings are cached for a moment so a polling kiosk does not hammer the printer.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from appliance.config import Config
from appliance.errors import UserFacingError
from appliance.printing import ipp
from appliance.printing.render import DPI, load_overlay, render_print

STATE_CACHE_S = 2.0
MEDIA = "na_index-4x6_4x6in"  # PWG 5101.1 name of 10x15 cm / 4x6 in photo paper
# printer-state-reasons that stop a print, and how the screens name them
BLOCKING = {
    "media-empty": "paper", "media-needed": "paper", "input-tray-missing": "paper",
    "media-jam": "jam", "jam": "jam",
    "marker-supply-empty": "ink", "toner-empty": "ink", "marker-waste-full": "ink",
    "offline": "offline", "shutdown": "offline", "paused": "offline",
    "door-open": "cover", "cover-open": "cover", "spool-area-full": "offline",
}
WARNINGS = {"media-low": "paper", "marker-supply-low": "ink", "toner-low": "ink"}


def _reason_keyword(reason: str) -> tuple[str, str]:
    """Split "media-empty-error" into ("media-empty", "error")."""
    for suffix in ("-error", "-warning", "-report"):
        if reason.endswith(suffix):
            return reason[: -len(suffix)], suffix[1:]
    return reason, "error"


def summarise(attributes: dict[str, list[Any]]) -> dict[str, Any]:
    """The printer's attributes as what the kiosk and the admin page need."""
    state = ipp.PRINTER_STATES.get(int((attributes.get("printer-state") or [0])[0]), "unknown")
    reasons = [str(r) for r in attributes.get("printer-state-reasons", []) if r != "none"]
    problems: list[str] = []
    warnings: list[str] = []
    for reason in reasons:
        # Any severity blocks: a printer with "media-empty-warning" still holds the guest's
        # print until someone loads paper, which is the unnoticed failure at events.
        keyword, _severity = _reason_keyword(reason)
        if keyword in BLOCKING:
            problems.append(BLOCKING[keyword])
        elif keyword in WARNINGS:
            warnings.append(WARNINGS[keyword])
    accepting = bool((attributes.get("printer-is-accepting-jobs") or [True])[0])
    if state == "stopped" and not problems:
        problems.append("offline")
    if not accepting and "offline" not in problems:
        problems.append("offline")
    return {
        "state": state,
        "ready": not problems,
        "problems": sorted(set(problems)),
        "warnings": sorted(set(warnings) - set(problems)),
        "reasons": reasons,
        "message": str((attributes.get("printer-state-message") or [""])[0]),
        "accepting_jobs": accepting,
        "model": str((attributes.get("printer-make-and-model") or [""])[0]),
    }


class BoothPrinter:
    """One configured printer, shared by the request threads of the service."""

    def __init__(self, cfg: Config, client: ipp.IppClient | None = None) -> None:
        self.cfg = cfg
        self.enabled = cfg.printer.enabled
        self.client = client or ipp.IppClient(cfg.printer.uri, cfg.printer.timeout_s)
        self.overlay = load_overlay(cfg.printer.frame_overlay)
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._prints: dict[str, int] = {}  # session id -> prints made (never who)
        self._supported: dict[str, list[Any]] = {}  # the printer's last attributes

    def state(self, fresh: bool = False) -> dict[str, Any]:
        if not self.enabled:
            return {"enabled": False, "state": "disabled", "ready": False,
                    "problems": [], "warnings": [], "reasons": []}
        with self._lock:
            if not fresh and self._cached and time.monotonic() - self._cached[0] < STATE_CACHE_S:
                return dict(self._cached[1])
        try:
            attributes = self.client.printer_attributes()
            summary = summarise(attributes)
            self._supported = attributes
            summary["last_error"] = None
        except ipp.IppError as exc:
            summary = {"state": "offline", "ready": False, "problems": ["offline"],
                       "warnings": [], "reasons": ["offline-report"], "message": "",
                       "accepting_jobs": False, "model": "", "last_error": str(exc)}
        summary["enabled"] = True
        summary["uri"] = self.cfg.printer.uri
        with self._lock:
            self._cached = (time.monotonic(), summary)
        return dict(summary)

    def prints_left(self, session_id: str) -> int:
        with self._lock:
            return max(0, self.cfg.printer.per_session_limit - self._prints.get(session_id, 0))

    def forget_session(self, session_id: str) -> None:
        with self._lock:
            self._prints.pop(session_id, None)

    def print_photo(self, bgr: np.ndarray, session_id: str, owner: str) -> dict[str, Any]:
        """Render and send one print; raises UserFacingError when it cannot be printed now."""
        if not self.enabled:
            raise UserFacingError("printing_off", "This booth does not print.", status=404,
                                  remedy="Take the picture to your phone with the QR code.")
        with self._lock:
            made = self._prints.get(session_id, 0)
            if made >= self.cfg.printer.per_session_limit:
                raise UserFacingError(
                    "print_limit", f"Each guest can print {self.cfg.printer.per_session_limit} "
                    "picture(s); this one has been printed enough.", status=429,
                    remedy="Take the picture to your phone with the QR code instead.")
            self._prints[session_id] = made + 1  # reserved now: two taps print once
        state = self.state(fresh=True)
        if not state["ready"]:
            self._unreserve(session_id)
            raise UserFacingError(
                "printer_not_ready", "The printer is not ready: "
                + ", ".join(state["problems"]) + ".", status=503, retry_after_s=30,
                remedy="Ask the booth's operator to check the printer, then try again.")
        document = render_print(bgr, owner, self.overlay)
        try:
            job_id = self._send(document, self._job_attributes(bgr))
        except ipp.IppError as exc:
            self._unreserve(session_id)
            with self._lock:
                self._cached = None
            raise UserFacingError("printer_not_ready", "The printer did not take the picture.",
                                  status=503, retry_after_s=30,
                                  remedy="Ask the booth's operator to check the printer "
                                         f"({exc}).") from None
        finally:
            document.release()
        return {"printed": True, "printer_job_id": job_id,
                "prints_left": self.prints_left(session_id)}

    def _send(self, document: Any, attributes: list[ipp.Attribute]) -> int:
        """Print-Job, waiting out a printer that says it is busy with the previous print."""
        deadline = time.monotonic() + self.cfg.printer.timeout_s
        while True:
            try:
                with document.memoryview() as view:
                    return self.client.print_job(view, "image/jpeg", attributes)
            except ipp.IppError as exc:
                if exc.status != ipp.SERVER_BUSY or time.monotonic() > deadline:
                    raise
            time.sleep(0.5)

    def _unreserve(self, session_id: str) -> None:
        with self._lock:
            self._prints[session_id] = max(0, self._prints.get(session_id, 1) - 1)

    def _job_attributes(self, bgr: np.ndarray) -> list[ipp.Attribute]:
        """Size, resolution and scaling, each only where the printer lists it as supported
        (IPP Everywhere printers refuse a job with a value they do not support); the JPEG's
        own pixels and 300 dpi say the same to a printer that takes none of them."""
        landscape = bgr.shape[1] > bgr.shape[0]
        wanted: list[tuple[ipp.Attribute, str]] = [
            ((ipp.KEYWORD, "media", MEDIA), "media-supported"),
            ((ipp.RESOLUTION, "printer-resolution", (DPI, DPI, 3)),
             "printer-resolution-supported"),
            ((ipp.KEYWORD, "print-scaling", "none"), "print-scaling-supported"),
        ]
        chosen: list[ipp.Attribute] = [(ipp.ENUM, "orientation-requested",
                                        4 if landscape else 3)]
        for attribute, supported in wanted:
            if attribute[2] in self._supported.get(supported, []):
                chosen.append(attribute)
        return chosen
