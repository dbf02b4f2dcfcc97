"""The kiosk's "join the booth's Wi-Fi" QR code: read from the file provisioning writes, at
each request; shown only on the booth's own screen; no file or a broken one is a 404 JSON answer
(never a 500), so the kiosk shows the download QR alone."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import segno.helpers

from appliance.config import load_config
from appliance.provision.wifi import wifi_qr_payload
from appliance.web.app import create_app
from tests.helpers.browser import decode_qr

SSID, PASSWORD = "Ephemera Lobby; 2", 'event:pass\\word"7'
# A phone's request as the LAN's TLS listener hands it to the app.
LAN_CLIENT = {"REMOTE_ADDR": "192.168.4.20", "ephemera.lan": True, "wsgi.url_scheme": "https"}
LAN_BASE = "https://192.168.4.1:8443"
LAN_ENV = {"EPHEMERA_LAN_ENABLED": "true", "EPHEMERA_LAN_ADDRESS": "192.168.4.1",
           "EPHEMERA_LAN_PORT": "8443", "EPHEMERA_LAN_ALLOWED_CIDRS": "192.168.4.0/24",
           "EPHEMERA_LAN_TLS_CERT": "/etc/ephemera/lan.crt",
           "EPHEMERA_LAN_TLS_KEY": "/etc/ephemera/lan.key"}


def rasterize(svg: str, px: int = 8) -> bytes:
    """segno's SVG (one stroked path of 1-module-high runs, no curves) as a PNG, module by module.

    Why by hand: the path uses only M/m/h, and no SVG renderer is among the test dependencies.
    """
    size = int(re.search(r'viewBox="0 0 (\d+) \1"', svg).group(1))  # type: ignore[union-attr]
    path = re.search(r'<path stroke="#000" d="([^"]+)"', svg).group(1)  # type: ignore[union-attr]
    modules = np.zeros((size, size), dtype=bool)
    x = y = 0.0
    for op, args in re.findall(r"([MmHh])([-\d. ]+)", path):
        numbers = [float(n) for n in args.split()]
        if op in "Mm":
            x, y = (numbers[0], numbers[1]) if op == "M" else (x + numbers[0], y + numbers[1])
        else:
            end = numbers[0] if op == "H" else x + numbers[0]
            modules[int(y), int(x):int(end)] = True
            x = end
    image = np.where(modules, 0, 255).astype(np.uint8)
    image = cv2.resize(image, None, fx=px, fy=px, interpolation=cv2.INTER_NEAREST)
    ok, png = cv2.imencode(".png", image)
    assert ok
    return png.tobytes()


def app_with(wifi_file: Path, tmp_path: Path, **extra: str) -> Any:
    env = {"EPHEMERA_KIOSK_RECEIPT_KEY": str(tmp_path / "receipt-key.pem"),
           "EPHEMERA_KIOSK_WIFI_FILE": str(wifi_file), **extra}
    return create_app(load_config(env=env), jobs=False)


def provisioned(path: Path) -> Path:
    """The file as provisioning writes it (appliance.provision.booth)."""
    path.write_text(json.dumps({"ssid": SSID, "qr": wifi_qr_payload(SSID, PASSWORD),
                                "address": "10.42.0.1", "name": "ephemera.local"}))
    return path


def test_the_wifi_qr_holds_the_booths_network(tmp_path: Path) -> None:
    client = app_with(provisioned(tmp_path / "wifi.json"), tmp_path).test_client()
    response = client.get("/ui/wifi-qr?lang=de")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.headers["Cache-Control"] == "no-store"
    svg = response.get_data(as_text=True)
    assert "<title>QR-Code: mit dem WLAN der Fotobox verbinden</title>" in svg
    expected = segno.helpers.make_wifi_data(ssid=SSID, password=PASSWORD, security="WPA",
                                            hidden=False)
    assert expected == "WIFI:T:WPA;S:Ephemera Lobby\\; 2;P:event\\:pass\\\\word\\\"7;;"
    assert decode_qr(rasterize(svg)) == expected


def test_the_file_is_read_at_each_request(tmp_path: Path) -> None:
    wifi_file = tmp_path / "wifi.json"
    client = app_with(wifi_file, tmp_path).test_client()
    assert client.get("/ui/wifi-qr").status_code == 404
    provisioned(wifi_file)
    assert client.get("/ui/wifi-qr").status_code == 200
    wifi_file.unlink()
    assert client.get("/ui/wifi-qr").status_code == 404


def test_no_file_is_a_404_json_answer(tmp_path: Path) -> None:
    client = app_with(tmp_path / "absent.json", tmp_path).test_client()
    response = client.get("/ui/wifi-qr")
    assert response.status_code == 404
    body = response.get_json()
    assert body["error"] == "no_booth_wifi" and body["message"] and body["remedy"]


@pytest.mark.parametrize("content", [
    b"{not json", b"\xff\xfe", b"[]", b'{"ssid": "x"}', b'{"qr": 7}',
    b'{"qr": "https://example.invalid/"}', b'{"qr": "WIFI:T:WPA;S:x;;"}',
    b'{"qr": "WIFI:T:WEP;S:x;P:yyyyyyyy;;"}', b'{"qr": "WIFI:T:WPA;S:;P:yyyyyyyy;;"}',
    b"{" + b" " * 8192 + b"}",
])
def test_a_malformed_file_is_logged_once_and_answers_404(
        tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture) -> None:
    wifi_file = tmp_path / "wifi.json"
    wifi_file.write_bytes(content)
    client = app_with(wifi_file, tmp_path).test_client()
    with caplog.at_level(logging.WARNING, logger="appliance.web.wifi_qr"):
        answers = [client.get("/ui/wifi-qr") for _ in range(3)]
    for response in answers:
        assert response.status_code == 404
        assert response.get_json()["error"] == "no_booth_wifi"
    warnings = [r for r in caplog.records if r.name == "appliance.web.wifi_qr"]
    assert len(warnings) == 1  # three requests, one line in the journal
    assert all(str(wifi_file) in r.getMessage() for r in warnings)


def test_an_unreadable_file_answers_404(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    client = app_with(folder, tmp_path).test_client()  # a directory: open() fails
    response = client.get("/ui/wifi-qr")
    assert response.status_code == 404
    assert response.get_json()["error"] == "no_booth_wifi"


def test_a_lan_client_is_refused(tmp_path: Path) -> None:
    """A phone on the LAN (let through by the client guard) still gets no Wi-Fi password."""
    client = app_with(provisioned(tmp_path / "wifi.json"), tmp_path, **LAN_ENV).test_client()
    response = client.get(LAN_BASE + "/ui/wifi-qr", environ_base=LAN_CLIENT)
    assert response.status_code == 403
    body = response.get_json()
    assert body["error"] == "kiosk_only" and PASSWORD not in response.get_data(as_text=True)
