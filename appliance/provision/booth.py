"""What a booth consists of: the ordered list of steps provisioning carries out.

Read top to bottom, this is the technician's checklist: users, directories, the service's
configuration (PIN as a hash), no disk-backed swap, no core dumps, a journal in RAM, the
firewall, no USB mass storage, printing (when on), TLS and signing keys, the booth's own Wi-Fi
(when on), the systemd units, enabled.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from appliance.provision import render, wifi
from appliance.provision.engine import Context, Directory, EnableUnits, File, Step, SystemUser
from appliance.provision.settings import ProvisionSettings
from appliance.provision.tls_files import TlsMaterial
from appliance.secure.pin import PinError, hash_pin, verify_pin

REPO = Path(__file__).resolve().parents[2]
UNITS_DIR = REPO / "systemd"
KIOSK_PAGE = REPO / "provisioning" / "kiosk" / "preparing.html"
CORE_UNITS = ("ephemera-engines.service", "ephemera.service", "ephemera-kiosk.service")
HOTSPOT_UNITS = ("ephemera-hotspot.service", "ephemera-hotspot-dns.service")
GPU_NODE_GLOBS = ("dev/nvmap", "dev/nvhost-*", "dev/nvgpu/igpu0/*", "dev/nvidia*")


def gpu_nodes(ctx: Context) -> list[str]:
    """The GPU device nodes present on this board (they differ by JetPack release)."""
    found: set[str] = set()
    for pattern in GPU_NODE_GLOBS:
        for node in ctx.root.glob(pattern):
            if node.is_char_device():
                found.add("/" + str(node.relative_to(ctx.root)))
    return sorted(found)


def _existing_pin_hash(ctx: Context) -> str:
    try:
        raw = tomllib.loads(ctx.path("/etc/ephemera/ephemera.toml").read_text())
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return ""
    value = raw.get("admin", {}).get("pin_hash", "")
    return value if isinstance(value, str) else ""


def pin_hash_for(ctx: Context, s: ProvisionSettings) -> str:
    """Keep the stored hash when it already matches (a fresh salt would rewrite the file)."""
    existing = _existing_pin_hash(ctx)
    if not s.admin_pin:
        return existing  # keep whatever `ephemera admin-pin` set
    try:
        if existing and verify_pin(s.admin_pin, existing):
            return existing
    except PinError:
        pass
    return hash_pin(s.admin_pin)


def _fstab_step(ctx: Context) -> list[Step]:
    fstab = ctx.path("/etc/fstab")
    if not fstab.exists():
        return []
    return [File("/etc/fstab", lambda cur: render.swap_free_fstab((cur or b"").decode()).encode(),
                 mode=fstab.stat().st_mode & 0o7777)]


def _extlinux_step(ctx: Context) -> list[Step]:
    path = ctx.path("/boot/extlinux/extlinux.conf")
    if not path.exists():
        return []
    return [File("/boot/extlinux/extlinux.conf", lambda cur: render.extlinux_with_init_on_free(
        (cur or b"").decode()).encode(), mode=path.stat().st_mode & 0o7777)]


def booth_steps(ctx: Context, s: ProvisionSettings) -> list[Step]:
    svc, kiosk = render.SERVICE_USER, render.KIOSK_USER
    steps: list[Step] = [
        SystemUser(svc, groups=("video", "render")),
        SystemUser(kiosk, groups=("video", "render", "input", "audio")),
        Directory("/etc/ephemera", 0o750, "root", svc),
        Directory("/etc/ephemera/tls", 0o750, "root", svc),
        Directory("/var/lib/ephemera", 0o755),
        Directory(render.ENGINES_DIR, 0o755, svc, svc),
        Directory("/usr/share/ephemera", 0o755),
        File("/etc/ephemera/ephemera.toml",
             render.booth_config(s, pin_hash_for(ctx, s)).encode(), 0o640, "root", svc),
        File("/etc/hostname", f"{s.booth_name}\n".encode()),
        *_fstab_step(ctx),
        *_extlinux_step(ctx),
        File("/etc/sysctl.d/90-ephemera.conf", render.SYSCTL.encode()),
        File("/etc/systemd/coredump.conf.d/90-ephemera.conf", render.COREDUMP.encode()),
        File("/etc/systemd/journald.conf.d/90-ephemera.conf", render.JOURNALD.encode()),
        File("/etc/modprobe.d/ephemera-no-usb-storage.conf", render.USB_STORAGE.encode()),
    ]
    tls = TlsMaterial.plan(ctx, s)
    steps += [
        File(f"{render.TLS_DIR}/ca.key", tls.ca_key, 0o600, secret=True),
        File(f"{render.TLS_DIR}/ca.crt", tls.ca_cert, 0o644),
        File(f"{render.TLS_DIR}/server.key", tls.server_key, 0o600, svc, svc, secret=True),
        File(f"{render.TLS_DIR}/server.crt", tls.server_cert, 0o644),
        File(f"{render.TLS_DIR}/receipt-signing.key", tls.signing_key, 0o600, svc, svc,
             secret=True),
        File(f"{render.TLS_DIR}/receipt-signing.pub", tls.signing_pub, 0o644),
    ]
    if s.printing:
        steps += [
            File("/etc/cups/cupsd.conf", render.CUPSD.encode(), 0o640, "root", "lp"
                 if ctx.gid("lp") is not None else "root"),
            File("/etc/cups/cups-files.conf", render.CUPS_FILES.encode(), 0o640, "root", "lp"
                 if ctx.gid("lp") is not None else "root"),
            File("/etc/tmpfiles.d/ephemera-cups.conf", render.CUPS_TMPFILES.encode()),
        ]
    units = list(CORE_UNITS)
    if s.wifi.enabled:
        units += HOTSPOT_UNITS
        qr = wifi.wifi_qr_payload(s.wifi.ssid, s.wifi.password)
        steps += [
            File("/etc/ephemera/hostapd.conf", wifi.hostapd_conf(s).encode(), 0o600,
                 secret=True),
            File("/etc/ephemera/dnsmasq.conf", wifi.dnsmasq_conf(s).encode(), 0o644),
            File("/etc/ephemera/hotspot.env", wifi.hotspot_env(s).encode(), 0o644),
            File("/etc/NetworkManager/conf.d/90-ephemera-hotspot.conf",
                 wifi.networkmanager_unmanaged(s).encode(), 0o644),
            # The kiosk shows this next to the download QR so a phone joins with one scan.
            File("/etc/ephemera/wifi.json", (json.dumps(
                {"ssid": s.wifi.ssid, "qr": qr, "address": s.lan_address,
                 "name": s.local_name}, indent=2, sort_keys=True) + "\n").encode(),
                0o640, "root", svc, secret=True),
        ]
    service_uid = ctx.uid(svc)
    kiosk_uid = ctx.uid(kiosk)
    # Until the users exist (a dry run of a first provisioning) the rules show placeholders.
    steps.append(File("/etc/nftables.conf", lambda _cur: render.nftables_conf(
        s, ctx.uid(svc) or service_uid or 0, ctx.uid(kiosk) or kiosk_uid or 0).encode(), 0o755))
    steps.append(File("/usr/share/ephemera/preparing.html", KIOSK_PAGE.read_bytes()))
    for unit in units:
        steps.append(File(f"/etc/systemd/system/{unit}", (UNITS_DIR / unit).read_bytes()))
    steps.append(File("/etc/systemd/system/ephemera.service.d/50-provision.conf",
                      render.service_dropin(s, gpu_nodes(ctx)).encode()))
    if ctx.path("/usr/lib/systemd/system/nftables.service").exists() or ctx.path(
            "/lib/systemd/system/nftables.service").exists():
        units.append("nftables.service")
    else:
        ctx.warn("nftables.service is not installed: install the nftables package so the "
                 "firewall loads at boot")
    steps.append(EnableUnits(units))
    return steps
