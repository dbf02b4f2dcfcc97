"""Printing against a real IPP Everywhere printer process (ippeveprinter, output on tmpfs)."""

from __future__ import annotations

import io
import json
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from appliance.config import load_config
from appliance.errors import UserFacingError
from appliance.printing import ipp
from appliance.printing.checks import cups_problems
from appliance.printing.printer import BoothPrinter, summarise
from appliance.printing.render import CARD_PIXELS, render_print
from appliance.secure.buffers import REGISTRY
from tests.helpers import ipp_printer

pytestmark = pytest.mark.skipif(not ipp_printer.available(),
                                reason="needs root, ippeveprinter (cups-ipp-utils), avahi-daemon")


def astronaut_bgr() -> np.ndarray:
    return np.ascontiguousarray(skdata.astronaut()[:, :, ::-1])


def test_encoder_round_trips_through_the_decoder() -> None:
    header = ipp.encode_request(ipp.GET_PRINTER_ATTRIBUTES, 7, [
        (ipp.OPERATION, [(ipp.CHARSET, "attributes-charset", "utf-8"),
                         (ipp.KEYWORD, "requested-attributes", ["a", "b"]),
                         (ipp.RESOLUTION, "printer-resolution", (300, 300, 3))])])
    parsed = ipp.decode_response(header)
    assert parsed.request_id == 7
    group = parsed.group(ipp.OPERATION)
    assert group["requested-attributes"] == ["a", "b"]
    assert group["printer-resolution"] == [(300, 300, 3)]


def test_render_is_4x6_inches_at_300_dpi() -> None:
    jpeg = render_print(astronaut_bgr(), "test-print")
    try:
        image = Image.open(io.BytesIO(bytes(jpeg.view())))
        assert image.size == CARD_PIXELS and image.info["dpi"] == (300, 300)
    finally:
        jpeg.release()


def booth_printer(uri: str, limit: int = 2) -> BoothPrinter:
    cfg = load_config(env={"EPHEMERA_PRINTER_ENABLED": "1", "EPHEMERA_PRINTER_URI": uri,
                           "EPHEMERA_PRINTER_PER_SESSION_LIMIT": str(limit),
                           "EPHEMERA_PRINTER_TIMEOUT_S": "20"})
    return BoothPrinter(cfg)


def _set_media_empty(printer_uri: str) -> None:
    """ippeveprinter's own web form: no media loaded in the main tray."""
    base = printer_uri.replace("ipp://", "http://").rsplit("/ipp/print", 1)[0]
    query = urllib.parse.urlencode({"size1": "", "type1": "", "level1": "0",
                                    "size3": "", "type3": "", "level3": "0"})
    urllib.request.urlopen(f"{base}/media?{query}", timeout=10).read()


def test_a_print_arrives_with_the_right_size_and_resolution_and_states_are_read() -> None:
    with ipp_printer.ipp_printer() as printer:
        booth = booth_printer(printer.uri)
        state = printer.run(booth.state, True)
        print("\n[printer ready]", state)
        assert state["ready"] and state["state"] == "idle" and state["problems"] == []

        result = printer.run(booth.print_photo, astronaut_bgr(), "session-a", "test-print")
        assert result["printed"] and result["prints_left"] == 1
        assert REGISTRY.live("test-print") == []
        deadline = time.monotonic() + 20
        files: list = []
        while time.monotonic() < deadline and not files:
            files = [p for p in printer.spool.rglob("*") if p.is_file()
                     and p.suffix in (".jpg", ".jpeg")]
            time.sleep(0.2)
        assert files, list(printer.spool.rglob("*"))
        arrived = Image.open(files[0])
        assert arrived.format == "JPEG" and arrived.size == CARD_PIXELS
        assert arrived.info["dpi"] == (300, 300)

        printer.run(booth.print_photo, astronaut_bgr(), "session-a", "test-print")
        with pytest.raises(UserFacingError) as limited:
            printer.run(booth.print_photo, astronaut_bgr(), "session-a", "test-print")
        assert limited.value.code == "print_limit" and limited.value.status == 429

        printer.run(_set_media_empty, printer.uri)
        empty = printer.run(booth.state, True)
        print("[printer out of paper]", empty)
        assert not empty["ready"] and "paper" in empty["problems"]
        assert any(r.startswith("media-empty") or r.startswith("media-needed")
                   for r in empty["reasons"])
        with pytest.raises(UserFacingError) as refused:
            printer.run(booth.print_photo, astronaut_bgr(), "session-b", "test-print")
        assert refused.value.code == "printer_not_ready"
        assert booth.prints_left("session-b") == 2, "a refused print used up the guest's limit"

        printer.stop_printer()
        time.sleep(0.5)
        offline = printer.run(booth.state, True)
        print("[printer gone]", offline)
        assert offline["state"] == "offline" and "offline" in offline["problems"]
        assert not offline["ready"] and offline["last_error"]


def test_state_reasons_are_named_for_the_screens() -> None:
    summary = summarise({"printer-state": [5], "printer-state-reasons":
                         ["media-jam-error", "marker-supply-low-warning"]})
    assert summary["problems"] == ["jam"] and summary["warnings"] == ["ink"]
    assert not summary["ready"]


@pytest.mark.skipif(shutil.which("cupsd") is None, reason="cupsd is not installed (Debian cups)")
def test_a_cups_queue_configured_for_the_booth_keeps_no_spool_or_history() -> None:
    from appliance.provision import render

    with ipp_printer.ipp_printer() as printer, ipp_printer.cups_queue(
            printer, render.CUPSD, render.CUPS_FILES) as queue:
        # doctor's reading of the configuration as provisioning installs it (paths on tmpfs).
        etc = queue.root / "etc"
        assert cups_problems(etc / "cupsd.conf", etc / "cups-files.conf") == []
        booth = booth_printer(queue.uri)
        state = printer.run(booth.state, True)
        assert state["ready"], state
        result = printer.run(booth.print_photo, astronaut_bgr(), "session-c", "test-print")
        assert result["printed"]
        deadline = time.monotonic() + 30
        arrived: list[Path] = []
        while time.monotonic() < deadline and not arrived:
            arrived = [p for p in printer.spool.rglob("*.jpg")]
            time.sleep(0.2)
        assert arrived, "the job never reached the printer through CUPS"
        image = Image.open(arrived[0])
        assert image.size == CARD_PIXELS and image.info["dpi"] == (300, 300)
        # Wait for CUPS to finish the job, then look for anything it kept.
        while time.monotonic() < deadline:
            if printer.exec("lpstat", "-h", "localhost:631", "-o").stdout.strip() == "":
                break
            time.sleep(0.2)
        time.sleep(1.0)
        kept = [p for sub in ("spool", "tmp") for p in (queue.root / sub).rglob("*")
                if p.is_file()]
        history = printer.exec("lpstat", "-h", "localhost:631", "-W", "completed", "-o")
        print("\n[cups] " + json.dumps({"spool_and_tmp_files": [p.name for p in kept],
                                        "completed_jobs_listed": history.stdout.strip()}))
        assert [p.name for p in kept if p.name[0] in "cd" and p.name[1:].isdigit()] == []
        assert kept == [], kept
        assert history.stdout.strip() == ""
        # What cupsd keeps across restarts: its job cache, written as it stops, lists no job.
        queue.stop()
        job_cache = queue.root / "cache" / "job.cache"
        assert not job_cache.exists() or "<Job " not in job_cache.read_text(errors="replace")


def test_doctor_sees_a_stock_cups_configuration_keeps_prints(tmp_path: Path) -> None:
    stock = tmp_path / "cupsd.conf"
    stock.write_text("LogLevel warn\nListen localhost:631\n")
    files = tmp_path / "cups-files.conf"
    files.write_text("SystemGroup lpadmin\n")
    problems = cups_problems(stock, files)
    assert any("preservejobfiles" in p for p in problems)
    assert any("preservejobhistory" in p for p in problems)
    assert any("requestroot" in p for p in problems)
