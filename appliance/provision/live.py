"""What only the running system can do: load settings, stop swap, start units, test the booth.

Skipped (and said so) under ``--root``, and in ``--dry-run``, where the list is printed instead.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path

from appliance.provision.engine import Context, ProvisionError, run
from appliance.provision.render import SERVICE_USER
from appliance.provision.settings import ProvisionSettings

VENV_PYTHON = "/opt/ephemera/venv/bin/python"


def disk_swaps(proc_swaps: str = "/proc/swaps") -> list[str]:
    """Active swap areas that are not zram (zram is RAM)."""
    try:
        lines = Path(proc_swaps).read_text().splitlines()[1:]
    except FileNotFoundError:
        return []
    return [ln.split()[0] for ln in lines if ln.split() and "/zram" not in ln.split()[0]]


def zram_writeback(sys_block: str = "/sys/block") -> list[str]:
    """zram devices with a backing device (they write pages to disk)."""
    found = []
    for dev in Path(sys_block).glob("zram*"):
        backing = dev / "backing_dev"
        if backing.exists() and backing.read_text().strip() not in ("", "none"):
            found.append(dev.name)
    return found


def commands(s: ProvisionSettings) -> list[tuple[str, list[str]]]:
    units = ["ephemera-engines.service", "ephemera.service", "ephemera-kiosk.service"]
    if s.wifi.enabled:
        units = ["ephemera-hotspot.service", "ephemera-hotspot-dns.service", *units]
    cmds = [("reload systemd", ["systemctl", "daemon-reload"]),
            ("set the host name (mDNS answers for it as .local)",
             ["hostnamectl", "set-hostname", s.booth_name]),
            ("apply sysctl settings", ["sysctl", "--quiet", "--system"]),
            ("restart journald (volatile)", ["systemctl", "restart", "systemd-journald"]),
            ("load the firewall", ["nft", "-f", "/etc/nftables.conf"])]
    cmds += [(f"swapoff {area}", ["swapoff", area]) for area in disk_swaps()]
    cmds.append(("build and validate the engines (offline)",
                 ["systemctl", "start", "ephemera-engines.service"]))
    cmds += [(f"(re)start {u}", ["systemctl", "restart", u]) for u in units[1:] + units[:1]
             if u != "ephemera-engines.service"]
    cmds.append(("ephemera doctor", ["runuser", "-u", SERVICE_USER, "--", VENV_PYTHON, "-m",
                                     "appliance", "--config", "/etc/ephemera/ephemera.toml",
                                     "doctor"]))
    return cmds


def self_test(port: int, timeout_s: float = 300) -> str:
    """One photo through the live booth: a plain grey photo must come back as a clean refusal
    (``no_face``) from the face pipeline, which proves decoding, the models and the gates work;
    whatever the booth kept of the session is deleted."""
    import cv2
    import numpy as np

    image = np.full((480, 640, 3), 128, np.uint8)
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise ProvisionError("self-test: could not make the test image")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    conn.request("POST", "/api/photos", body=png.tobytes(),
                 headers={"Content-Type": "image/png",
                          "X-Ephemera-Consent": "adults-consenting"})
    reply = conn.getresponse()
    body = json.loads(reply.read() or b"{}")
    token = body.get("session_token")
    if token:
        conn.request("DELETE", "/api/session", headers={"Authorization": f"Bearer {token}"})
        conn.getresponse().read()
    if reply.status == 422 and body.get("error") == "no_face":
        return ("self-test passed: the face pipeline refused a blank photo (no_face), as it "
                "should, and nothing was kept")
    raise ProvisionError(f"self-test: the photo upload answered {reply.status}: {body}")


def carry_out_live(ctx: Context, s: ProvisionSettings, changed: bool) -> list[str]:
    """Run the live commands; returns what was done (or would be, or why it was skipped)."""
    plan = commands(s)
    if not ctx.live:
        return [f"skipped on a scratch root: {what}" for what, _ in plan]
    if ctx.dry_run:
        return [f"would {what}: {' '.join(argv)}" for what, argv in plan]
    done = []
    for what, argv in plan:
        if not changed and what.startswith(("(re)start", "restart journald", "reload")):
            continue  # nothing was rewritten: leave running services alone
        run(argv)
        done.append(what)
    for dev in zram_writeback():
        ctx.warn(f"{dev} writes swapped pages to a disk (backing_dev): disable its writeback")
    done.append(self_test(s.kiosk_port))
    return done
