"""The booth's own Wi-Fi: the ``WIFI:`` QR payload, hostapd and dnsmasq settings.

Why hostapd + dnsmasq (not NetworkManager's "shared" hotspot): NetworkManager's shared mode
turns on IP forwarding and masquerading, i.e. a route to wherever the booth can reach. The
booth's access point must offer none: dnsmasq hands out addresses with no router option and
answers DNS only for the booth's own name, hostapd isolates the guests' phones from each other,
and the kernel forwards nothing (sysctl and the nftables forward chain).
"""

from __future__ import annotations

import ipaddress

from appliance.provision.settings import ProvisionSettings

SPECIAL = '\\;,:"'


def _escape(text: str) -> str:
    return "".join("\\" + c if c in SPECIAL else c for c in text)


def wifi_qr_payload(ssid: str, password: str, *, hidden: bool = False) -> str:
    """The de-facto standard Wi-Fi QR text (ZXing's ``WIFI:`` format) phones' cameras read.

    ``T:WPA`` covers WPA2 and WPA3 (SAE) networks alike.
    """
    payload = f"WIFI:T:WPA;S:{_escape(ssid)};P:{_escape(password)};"
    if hidden:
        payload += "H:true;"
    return payload + ";"


def hostapd_conf(s: ProvisionSettings) -> str:
    w = s.wifi
    return f"""# Written by Ephemera provisioning: the booth's own access point.
# WPA2 and WPA3 (SAE) with protected management frames; guests cannot see each other.
interface={s.lan_interface}
driver=nl80211
ctrl_interface=/run/hostapd
ctrl_interface_group=0
ssid={w.ssid}
utf8_ssid=1
country_code={w.country}
ieee80211d=1
hw_mode=g
channel={w.channel}
ieee80211n=1
wmm_enabled=1
auth_algs=1
ignore_broadcast_ssid=0
ap_isolate=1
max_num_sta=32
wpa=2
wpa_key_mgmt=WPA-PSK SAE
wpa_pairwise=CCMP
rsn_pairwise=CCMP
ieee80211w=1
sae_require_mfp=1
wpa_passphrase={w.password}
"""


def dhcp_range(s: ProvisionSettings) -> tuple[str, str]:
    """The first and last guest address: the booth's subnet less the booth and the edges."""
    net = s.lan_network
    booth = ipaddress.ip_address(s.lan_address)
    hosts = [h for h in (net.network_address + 10, net.broadcast_address - 5) if h != booth]
    if len(hosts) != 2 or int(hosts[0]) >= int(hosts[1]):
        raise ValueError(f"lan.prefix = {s.lan_prefix} leaves no room for guests' phones")
    return str(hosts[0]), str(hosts[1])


def dnsmasq_conf(s: ProvisionSettings) -> str:
    first, last = dhcp_range(s)
    netmask = s.lan_network.netmask
    return f"""# Written by Ephemera provisioning: DHCP and DNS for the booth's own Wi-Fi only.
# No router and no upstream DNS: the access point leads nowhere but to the booth.
interface={s.lan_interface}
bind-interfaces
except-interface=lo
no-resolv
no-hosts
no-poll
domain-needed
bogus-priv
local=/local/
address=/{s.local_name}/{s.lan_address}
address=/{s.booth_name}/{s.lan_address}
dhcp-range={first},{last},{netmask},2h
dhcp-option=option:router
dhcp-option=option:dns-server,{s.lan_address}
dhcp-authoritative
dhcp-leasefile=/run/ephemera-hotspot/dnsmasq.leases
log-facility=-
"""


def hotspot_env(s: ProvisionSettings) -> str:
    return (f"EPHEMERA_WIFI_INTERFACE={s.lan_interface}\n"
            f"EPHEMERA_WIFI_ADDRESS={s.lan_address}/{s.lan_prefix}\n")


def networkmanager_unmanaged(s: ProvisionSettings) -> str:
    return ("# Written by Ephemera provisioning: hostapd owns this interface.\n"
            f"[keyfile]\nunmanaged-devices=interface-name:{s.lan_interface}\n")
