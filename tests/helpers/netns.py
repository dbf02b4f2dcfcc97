"""Network namespaces joined by veth pairs, for the LAN tests and the load bench.

``make_networks`` makes a booth namespace with two links: one to a guest LAN namespace
(10.77.0.0/24) and one to an outside namespace (10.78.0.0/24, routed to the booth but outside
the allowed ranges). Everything is removed by ``remove_networks`` (the veth ends go with their
namespaces).
"""

from __future__ import annotations

import subprocess

BOOTH_LAN, GUEST, BOOTH_OUT, OUTSIDER = "10.77.0.1", "10.77.0.2", "10.78.0.1", "10.78.0.2"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def make_networks(tag: str) -> dict[str, str]:
    names = {"booth": f"ephb-{tag}", "lan": f"ephl-{tag}", "out": f"epho-{tag}"}
    for name in names.values():
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")
    for side, booth_ip, peer_ip in (("lan", BOOTH_LAN, GUEST), ("out", BOOTH_OUT, OUTSIDER)):
        a, b = f"vb{side[0]}-{tag}", f"vp{side[0]}-{tag}"
        ip("link", "add", a, "type", "veth", "peer", "name", b)
        ip("link", "set", a, "netns", names["booth"])
        ip("link", "set", b, "netns", names[side])
        ip("-n", names["booth"], "addr", "add", f"{booth_ip}/24", "dev", a)
        ip("-n", names[side], "addr", "add", f"{peer_ip}/24", "dev", b)
        ip("-n", names["booth"], "link", "set", a, "up")
        ip("-n", names[side], "link", "set", b, "up")
        ip("-n", names[side], "route", "add", "default", "via", booth_ip)
    return names


def add_guest_addresses(names: dict[str, str], tag: str, count: int) -> list[str]:
    """More guest addresses on the LAN side (one per simulated phone): 10.77.0.10, ..."""
    addresses = [f"10.77.0.{10 + i}" for i in range(count)]
    for address in addresses:
        ip("-n", names["lan"], "addr", "add", f"{address}/24", "dev", f"vpl-{tag}")
    return addresses


def remove_networks(names: dict[str, str]) -> None:
    for name in names.values():
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
