"""The text of every file provisioning writes, from the technician's settings.

Pure functions: the same settings always give the same bytes, which is what makes a second
provisioning run change nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from appliance.provision.settings import ProvisionSettings

HEADER = "# Written by Ephemera provisioning (provisioning/provision); edits are overwritten.\n"
SERVICE_USER = "ephemera"
KIOSK_USER = "ephemera-kiosk"
STORE_PATH = "/run/ephemera/store"
ENGINES_DIR = "/var/lib/ephemera/engines"
TLS_DIR = "/etc/ephemera/tls"


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def booth_config(s: ProvisionSettings, pin_hash: str) -> str:
    """/etc/ephemera/ephemera.toml: what the service reads (validated by appliance.config)."""
    return f"""{HEADER}# `ephemera admin-pin` may change admin.pin_hash; every other key comes from
# the provisioning file. `ephemera config --defaults` explains each setting.
mode = "strict"

[kiosk]
port = {s.kiosk_port}

[lan]
# The LAN listener for guests' phones is prepared (address, ranges, certificate, firewall)
# but not served by this release: `ephemera serve` refuses enabled = true.
enabled = false
interface = "{s.lan_interface}"
address = "{s.lan_address}"
port = {s.lan_port}
allowed_cidrs = {_toml_list(s.allowed_cidrs)}
tls_cert = "{TLS_DIR}/server.crt"
tls_key = "{TLS_DIR}/server.key"

[store]
path = "{STORE_PATH}"

[retention]
default_minutes = {s.retention_minutes}

[models]
engines_dir = "{ENGINES_DIR}"

[admin]
pin_hash = "{pin_hash}"
"""


def service_dropin(s: ProvisionSettings, gpu_nodes: Sequence[str]) -> str:
    """ephemera.service.d/50-provision.conf: this booth's LAN ranges, sizes and GPU nodes."""
    allow = "\n".join(f"IPAddressAllow={c}" for c in s.allowed_cidrs)
    devices = "".join(f"DeviceAllow={n} rw\n" for n in gpu_nodes)
    return f"""{HEADER}[Service]
# Only loopback and the configured LAN ranges (the empty line resets the unit's defaults).
IPAddressAllow=
IPAddressAllow=localhost
{allow}
TemporaryFileSystem=
TemporaryFileSystem=/run/ephemera:size={s.store_size},mode=1777,nosuid,nodev,noexec
MemoryMax={s.memory_max}
{devices}"""


def nftables_conf(s: ProvisionSettings, service_uid: int, kiosk_uid: int) -> str:
    """/etc/nftables.conf: the LAN ranges may reach the LAN port; everything else is dropped.

    The service and kiosk users may open no connection except on loopback, and the booth
    forwards nothing (its access point is a dead end by design).
    """
    v4 = [c for c in s.allowed_cidrs if ipaddress.ip_network(c).version == 4]
    v6 = [c for c in s.allowed_cidrs if ipaddress.ip_network(c).version == 6]
    sets, lan_rules = "", []
    if v4:
        sets += ("    set lan4 {\n        type ipv4_addr\n        flags interval\n"
                 f"        elements = {{ {', '.join(v4)} }}\n    }}\n")
        lan_rules.append("ip saddr @lan4")
    if v6:
        sets += ("    set lan6 {\n        type ipv6_addr\n        flags interval\n"
                 f"        elements = {{ {', '.join(v6)} }}\n    }}\n")
        lan_rules.append("ip6 saddr @lan6")
    ports = [str(s.lan_port)] + (["22"] if s.ssh_from_lan else [])
    rules = []
    for match in lan_rules:
        rules.append(f"        {match} tcp dport {{ {', '.join(ports)} }} accept")
        rules.append(f"        {match} udp dport 5353 accept comment \"mDNS: {s.local_name}\"")
    if s.wifi.enabled:
        iface = s.lan_interface
        rules.append(f"        iifname \"{iface}\" udp dport 67 accept comment \"DHCP\"")
        rules.append(f"        iifname \"{iface}\" meta l4proto {{ tcp, udp }} th dport 53 "
                     "accept comment \"DNS for the booth's name\"")
    body = "\n".join(rules)
    return f"""#!/usr/sbin/nft -f
{HEADER}flush ruleset

table inet ephemera {{
{sets}
    chain input {{
        type filter hook input priority filter; policy drop;
        iif "lo" accept
        ct state established,related accept
        ct state invalid drop
        icmp type {{ echo-request, destination-unreachable, time-exceeded }} accept
        icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert,
                       echo-request, destination-unreachable, packet-too-big,
                       time-exceeded }} accept
{body}
    }}

    chain forward {{
        type filter hook forward priority filter; policy drop;
    }}

    chain output {{
        type filter hook output priority filter; policy accept;
        meta skuid {{ {service_uid}, {kiosk_uid} }} oif "lo" accept
        meta skuid {{ {service_uid}, {kiosk_uid} }} ct state established,related accept
        meta skuid {{ {service_uid}, {kiosk_uid} }} counter drop \
            comment "no new outbound connections"
    }}
}}
"""


JOURNALD = f"""{HEADER}# The journal lives in RAM on a booth; no syslog that writes files gets it.
[Journal]
Storage=volatile
RuntimeMaxUse=64M
ForwardToSyslog=no
ForwardToWall=no
"""

SYSCTL = f"""{HEADER}# Core dumps go nowhere; setuid programs are never dumped; nothing is routed.
kernel.core_pattern=|/bin/false
fs.suid_dumpable=0
net.ipv4.ip_forward=0
net.ipv6.conf.all.forwarding=0
vm.swappiness=0
"""

COREDUMP = f"""{HEADER}[Coredump]
Storage=none
ProcessSizeMax=0
"""

USB_STORAGE = f"""{HEADER}# Nobody plugs a stick into the booth to copy anything off it.
blacklist usb_storage
blacklist uas
install usb_storage /bin/false
install uas /bin/false
"""

CUPSD = f"""{HEADER}# Printing for the booth only (loopback), no job files, no job history.
LogLevel warn
MaxLogSize 0
Listen localhost:631
Listen /run/cups/cups.sock
Browsing No
BrowseLocalProtocols none
WebInterface No
DefaultAuthType Basic
PreserveJobHistory No
PreserveJobFiles No
MaxJobs 8
AutoPurgeJobs Yes
<Location />
  Order allow,deny
  Allow localhost
</Location>
<Policy default>
  JobPrivateAccess default
  JobPrivateValues default
  SubscriptionPrivateAccess default
  SubscriptionPrivateValues default
  <Limit All>
    Order deny,allow
    Deny all
    Allow localhost
  </Limit>
</Policy>
"""

CUPS_FILES = f"""{HEADER}# Spool, temporary files and the job cache on tmpfs (/run), logs to the
# volatile journal (cupsd's job.cache records each job while it prints; on disk it would
# outlive the job).
RequestRoot /run/cups/spool
TempDir /run/cups/tmp
CacheDir /run/cups/cache
AccessLog syslog
ErrorLog syslog
PageLog syslog
"""

CUPS_TMPFILES = f"""{HEADER}d /run/cups/spool 0710 root lp -
d /run/cups/tmp 1770 root lp -
d /run/cups/cache 0770 root lp -
"""


def swap_free_fstab(fstab: str) -> str:
    """``fstab`` with every disk-backed swap line commented out (idempotent)."""
    lines = []
    for line in fstab.splitlines():
        fields = line.split()
        if fields and not line.lstrip().startswith("#") and len(fields) >= 3 and (
                fields[2] == "swap"):
            line = "# disabled by ephemera (no disk-backed swap on a booth): " + line
        lines.append(line)
    return "\n".join(lines) + ("\n" if fstab.endswith("\n") or not fstab else "")


def extlinux_with_init_on_free(text: str) -> str:
    """Jetson boot config with ``init_on_free=1`` on every kernel APPEND line (idempotent):
    the kernel then clears freed pages, so a killed process leaves no image in free RAM."""
    lines = []
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("APPEND ") and not any(
                token.startswith("init_on_free=") for token in stripped.split()):
            line = line.rstrip() + " init_on_free=1"
        lines.append(line)
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")
