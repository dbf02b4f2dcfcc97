"""Refuse every request from outside this box and its guest LAN (P5), before any handler runs.

Why, when the service binds loopback anyway: binding is one layer; a misconfigured proxy, a
port forward or a future listener must still not let the internet in. The guard answers 403
with a JSON body and records a ``request_refused`` audit event (never the address: a refused
client may be a guest's phone on the wrong network, and the audit log identifies nobody).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from flask import Flask, request

from appliance.audit import audit
from appliance.config import Config
from appliance.errors import UserFacingError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed_networks(cfg: Config) -> tuple[Network, ...]:
    """The client networks this configuration lets in: the guest LAN only when it is enabled."""
    if not cfg.lan.enabled:
        return ()
    return tuple(ipaddress.ip_network(cidr) for cidr in cfg.lan.allowed_cidrs)


def client_allowed(address: str | None, networks: Iterable[Network]) -> bool:
    """Loopback always (the kiosk); otherwise only an address inside an allowed network."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or any(ip in net for net in networks if ip.version == net.version)


def install_client_guard(app: Flask, cfg: Config) -> None:
    networks = allowed_networks(cfg)

    @app.before_request
    def refuse_outsiders() -> None:
        if not client_allowed(request.remote_addr, networks):
            audit("request_refused", reason="outside_allowed_networks")
            raise UserFacingError(
                "not_on_lan", "This booth only answers on its own network.", status=403,
                remedy="Join the booth's Wi-Fi (or the event's network) and scan the QR code "
                       "again.")
