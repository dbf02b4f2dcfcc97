"""P5: only loopback and, with the LAN on, its allowed networks get an answer."""

from __future__ import annotations

import pytest

from appliance import audit
from appliance.cli import main
from appliance.config import load_config
from appliance.web.app import create_app
from appliance.web.client_guard import allowed_networks, client_allowed

LAN_ENV = {"EPHEMERA_LAN_ENABLED": "true", "EPHEMERA_LAN_INTERFACE": "wlan0",
           "EPHEMERA_LAN_TLS_CERT": "/etc/ephemera/lan.crt",
           "EPHEMERA_LAN_TLS_KEY": "/etc/ephemera/lan.key",
           "EPHEMERA_LAN_ALLOWED_CIDRS": "192.168.4.0/24,fd00:4::/64"}


@pytest.mark.parametrize(("address", "lan_on", "allowed"), [
    ("127.0.0.1", False, True), ("::1", False, True), ("::ffff:127.0.0.1", False, True),
    ("192.168.4.20", False, False),  # the LAN is off: even a LAN address is refused
    ("192.168.4.20", True, True), ("::ffff:192.168.4.20", True, True),
    ("fd00:4::20", True, True), ("192.168.5.20", True, False), ("8.8.8.8", True, False),
    ("2001:db8::1", True, False), ("", True, False), (None, True, False),
    ("not-an-address", True, False),
])
def test_client_allowed(address: str | None, lan_on: bool, allowed: bool) -> None:
    cfg = load_config(env=LAN_ENV if lan_on else {})
    assert client_allowed(address, allowed_networks(cfg)) is allowed


def test_outsider_gets_403_json_and_an_audit_event_without_its_address() -> None:
    app = create_app(load_config(env={}), jobs=False)
    client = app.test_client()
    assert client.get("/healthz", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    audit.clear()
    answer = client.get("/healthz", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert answer.status_code == 403
    assert answer.get_json()["error"] == "not_on_lan"
    assert "remedy" in answer.get_json()
    events = audit.recent()
    assert [e["event"] for e in events] == ["request_refused"]
    assert "203.0.113.9" not in str(events)


def test_serve_refuses_a_lan_setting_it_cannot_honour(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in LAN_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("EPHEMERA_LAN_INTERFACE", "nosuchif0")
    assert main(["serve"]) == 2  # said before anything starts, never silently ignored
    assert "lan.interface = 'nosuchif0' has no IPv4 address" in capsys.readouterr().err
    monkeypatch.setenv("EPHEMERA_LAN_ADDRESS", "127.0.0.2")
    assert main(["serve"]) == 2
    assert "is a loopback address" in capsys.readouterr().err
