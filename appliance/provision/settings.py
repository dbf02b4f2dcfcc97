"""The technician's provisioning file (``--config booth.toml``), validated key by key.

Why a file of its own (not the service's ephemera.toml): it holds what only provisioning needs
(the Wi-Fi password, the admin PIN before it is hashed, the board's name). Provisioning derives
the service's configuration from it and stores the PIN only as a hash.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from appliance.config import ConfigError

HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
COUNTRY = re.compile(r"[A-Z]{2}")
SIZE = re.compile(r"[0-9]+[KMG]")


@dataclass(frozen=True)
class WifiSettings:
    enabled: bool
    ssid: str
    password: str
    country: str
    channel: int


@dataclass(frozen=True)
class ProvisionSettings:
    booth_name: str
    lan_interface: str
    lan_address: str
    lan_prefix: int
    lan_port: int
    kiosk_port: int
    allowed_cidrs: tuple[str, ...]
    ssh_from_lan: bool
    wifi: WifiSettings
    printing: bool
    admin_pin: str
    retention_minutes: int
    store_size: str
    memory_max: str

    @property
    def local_name(self) -> str:
        return f"{self.booth_name}.local"

    @property
    def lan_network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(f"{self.lan_address}/{self.lan_prefix}", strict=False)


class _Reader:
    """Takes values out of one table, naming the key in every error."""

    def __init__(self, raw: dict[str, Any], section: str) -> None:
        value = raw.get(section, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{section}: expected a [{section}] table")
        self.table, self.section = value, section
        self.used: set[str] = set()

    def get(self, key: str, default: Any, check: Any, allowed: str) -> Any:
        self.used.add(key)
        value = self.table.get(key, default)
        try:
            ok = check(value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"{self.section}.{key} = {value!r} is not allowed: expected "
                              f"{allowed}")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise ConfigError(f"unknown key {self.section}.{unknown[0]}; known keys in "
                              f"[{self.section}]: {', '.join(sorted(self.used))}")


def _is_int(lo: int, hi: int) -> Any:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _private_ip(value: Any) -> bool:
    return isinstance(value, str) and ipaddress.ip_address(value).is_private


def _cidr_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, str) and ipaddress.ip_network(v, strict=False).is_private for v in value)


def _ascii_printable(lo: int, hi: int) -> Any:
    return lambda v: isinstance(v, str) and lo <= len(v) <= hi and all(
        32 <= ord(c) < 127 for c in v)


def parse_settings(raw: dict[str, Any]) -> ProvisionSettings:
    known = {"booth", "lan", "wifi", "printing", "admin", "service"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown table [{unknown[0]}]; known: {', '.join(sorted(known))}")
    booth, lan, wifi = _Reader(raw, "booth"), _Reader(raw, "lan"), _Reader(raw, "wifi")
    printing, admin, service = (_Reader(raw, "printing"), _Reader(raw, "admin"),
                                _Reader(raw, "service"))
    name = booth.get("name", "ephemera", lambda v: isinstance(v, str) and HOSTNAME.fullmatch(v),
                     "a host name: lower-case letters, digits and '-', e.g. \"booth-01\"")
    interface = lan.get("interface", "wlan0", lambda v: isinstance(v, str) and re.fullmatch(
        r"[A-Za-z0-9_.-]{1,15}", v), "a network interface name such as wlan0 or eth0")
    address = lan.get("address", "192.168.4.1", _private_ip,
                      "the booth's private LAN address, e.g. \"192.168.4.1\"")
    prefix = lan.get("prefix", 24, _is_int(8, 30), "a prefix length from 8 to 30, e.g. 24")
    network = str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
    cidrs = lan.get("allowed_cidrs", [network], _cidr_list,
                    "a non-empty list of private networks, e.g. [\"192.168.4.0/24\"]")
    lan_port = lan.get("port", 8443, _is_int(1, 65535), "a port from 1 to 65535")
    kiosk_port = lan.get("kiosk_port", 8080, _is_int(1, 65535), "a port from 1 to 65535")
    ssh = lan.get("ssh_from_lan", False, lambda v: isinstance(v, bool), "true or false")
    wifi_on = wifi.get("enabled", False, lambda v: isinstance(v, bool), "true or false")
    ssid = wifi.get("ssid", f"Ephemera {name}", _ascii_printable(1, 32),
                    "a network name of 1 to 32 printable ASCII characters")
    password = wifi.get("password", "", lambda v: isinstance(v, str) and (
        not wifi_on or _ascii_printable(8, 63)(v)),
        "a per-event WPA2/WPA3 passphrase of 8 to 63 printable ASCII characters")
    country = wifi.get("country", "US", lambda v: isinstance(v, str) and COUNTRY.fullmatch(v),
                       "a two-letter country code in capitals, e.g. \"DE\"")
    channel = wifi.get("channel", 6, _is_int(1, 13), "a 2.4 GHz channel from 1 to 13")
    print_on = printing.get("enabled", False, lambda v: isinstance(v, bool), "true or false")
    pin = admin.get("pin", "", lambda v: isinstance(v, str) and (
        v == "" or re.fullmatch(r"[0-9]{6,12}", v)), "6 to 12 digits, or \"\" to leave unset")
    retention = service.get("retention_minutes", 15, _is_int(1, 24 * 60),
                            "whole minutes from 1 to 1440")
    store_size = service.get("store_size", "1G", lambda v: isinstance(v, str) and SIZE.fullmatch(
        v), "a size such as \"1G\" or \"768M\"")
    memory_max = service.get("memory_max", "5G", lambda v: isinstance(v, str) and SIZE.fullmatch(
        v), "a size such as \"5G\"")
    for reader in (booth, lan, wifi, printing, admin, service):
        reader.finish()
    if lan_port == kiosk_port:
        raise ConfigError(f"lan.port = {lan_port} is also lan.kiosk_port: pick two ports")
    return ProvisionSettings(
        booth_name=name, lan_interface=interface, lan_address=address, lan_prefix=prefix,
        lan_port=lan_port, kiosk_port=kiosk_port,
        allowed_cidrs=tuple(str(ipaddress.ip_network(c, strict=False)) for c in cidrs),
        ssh_from_lan=ssh, wifi=WifiSettings(wifi_on, ssid, password, country, channel),
        printing=print_on, admin_pin=pin, retention_minutes=retention, store_size=store_size,
        memory_max=memory_max)


def load_settings(path: Path | None) -> ProvisionSettings:
    if path is None:
        return parse_settings({})
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"provisioning file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"provisioning file {path} is not valid TOML: {exc}") from None
    return parse_settings(raw)
