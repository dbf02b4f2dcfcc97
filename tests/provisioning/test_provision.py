"""provisioning/provision under a scratch root: what it creates, that it is idempotent, that a
dry run changes nothing, that bad files are refused by key, and that what it writes passes the
real tools (nft -c, dnsmasq --test, systemd-analyze, cryptography)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from appliance.config import load_config
from appliance.provision.wifi import wifi_qr_payload
from appliance.secure import tls
from appliance.secure.pin import verify_pin
from tests.provisioning.scratch import BOOTH, booth_file, make_root, provision, tree

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="owners can only be set as root")


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    base = tmp_path_factory.mktemp("provision")
    root = make_root(base)
    config = booth_file(base)
    first = provision("--config", config, "--root", root)
    assert first.returncode == 0, first.stdout + first.stderr
    return root, config, first.stdout


def ids(root: Path, table: str, name: str) -> int:
    for line in (root / "etc" / table).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    raise AssertionError(f"{name} not in {table}")


def test_first_run_reports_each_change(provisioned: tuple[Path, Path, str]) -> None:
    _root, _config, out = provisioned
    for line in ("create system user ephemera", "create /etc/ephemera/ephemera.toml",
                 "create /etc/nftables.conf", "create /etc/ephemera/tls/server.key",
                 "enable ephemera.service", "rewrite /etc/fstab"):
        assert line in out, out
    assert "skipped on a scratch root: load the firewall" in out


@ROOT_ONLY
@pytest.mark.parametrize(("path", "mode", "owner", "group"), [
    ("etc/ephemera", 0o750, "root", "ephemera"),
    ("etc/ephemera/ephemera.toml", 0o640, "root", "ephemera"),
    ("etc/ephemera/tls/ca.key", 0o600, "root", "root"),
    ("etc/ephemera/tls/server.key", 0o600, "ephemera", "ephemera"),
    ("etc/ephemera/tls/receipt-signing.key", 0o600, "ephemera", "ephemera"),
    ("etc/ephemera/tls/ca.crt", 0o644, "root", "root"),
    ("etc/ephemera/hostapd.conf", 0o600, "root", "root"),
    ("etc/ephemera/wifi.json", 0o640, "root", "ephemera"),
    ("var/lib/ephemera/engines", 0o755, "ephemera", "ephemera"),
    ("etc/systemd/system/ephemera.service", 0o644, "root", "root"),
])
def test_owners_and_modes(provisioned: tuple[Path, Path, str], path: str, mode: int,
                          owner: str, group: str) -> None:
    root = provisioned[0]
    st = (root / path).stat()
    assert st.st_mode & 0o7777 == mode, f"{path}: {st.st_mode & 0o7777:04o}"
    assert st.st_uid == (0 if owner == "root" else ids(root, "passwd", owner)), path
    assert st.st_gid == (0 if group == "root" else ids(root, "group", group)), path


def test_users_are_system_users_without_login(provisioned: tuple[Path, Path, str]) -> None:
    passwd = (provisioned[0] / "etc/passwd").read_text()
    for user in ("ephemera", "ephemera-kiosk"):
        line = next(ln for ln in passwd.splitlines() if ln.startswith(user + ":"))
        assert int(line.split(":")[2]) < 1000 and line.endswith(":/usr/sbin/nologin"), line
    group = (provisioned[0] / "etc/group").read_text()
    assert any(ln.startswith("video:") and "ephemera" in ln for ln in group.splitlines())


def test_second_run_changes_nothing(provisioned: tuple[Path, Path, str]) -> None:
    root, config, _ = provisioned
    before = tree(root)
    again = provision("--config", config, "--root", root)
    assert again.returncode == 0, again.stderr
    assert "no changes: this booth is already provisioned" in again.stdout, again.stdout
    assert tree(root) == before


def test_dry_run_changes_nothing_and_lists_every_change(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    config = booth_file(tmp_path)
    before = tree(root)
    dry = provision("--config", config, "--root", root, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert tree(root) == before
    planned = [ln[len("would "):] for ln in dry.stdout.splitlines() if ln.startswith("would ")]
    real = provision("--config", config, "--root", root)
    made = [ln for ln in real.stdout.splitlines()
            if ln.split(" ", 1)[0] in {"create", "rewrite", "chmod", "chown", "enable", "add"}]
    assert planned == made and len(made) > 30


def test_dry_run_after_provisioning_has_nothing_to_do(
        provisioned: tuple[Path, Path, str]) -> None:
    root, config, _ = provisioned
    dry = provision("--config", config, "--root", root, "--dry-run")
    assert "no changes" in dry.stdout and "would create" not in dry.stdout, dry.stdout


@pytest.mark.parametrize(("tables", "key"), [
    ({"wifi": {"enabled": True, "password": "short"}}, "wifi.password"),
    ({"lan": {"address": "8.8.8.8"}}, "lan.address"),
    ({"booth": {"name": "Booth 1"}}, "booth.name"),
    ({"admin": {"pin": "12ab"}}, "admin.pin"),
    ({"lan": {"colour": "red"}}, "lan.colour"),
    ({"wifi": {"channel": 14}}, "wifi.channel"),
])
def test_bad_file_names_the_key_and_changes_nothing(tmp_path: Path, tables: dict[str, dict[
        str, object]], key: str) -> None:
    root = make_root(tmp_path)
    before = tree(root)
    result = provision("--config", booth_file(tmp_path, tables), "--root", root)
    assert result.returncode == 2
    assert key in result.stderr, result.stderr
    assert tree(root) == before


def test_booth_config_is_valid_and_holds_only_the_pin_hash(
        provisioned: tuple[Path, Path, str]) -> None:
    root = provisioned[0]
    path = root / "etc/ephemera/ephemera.toml"
    cfg = load_config(path, env={})
    assert cfg.strict and cfg.store.path == "/run/ephemera/store"
    assert cfg.lan.allowed_cidrs == ("192.168.44.0/24",)
    assert verify_pin("246810", cfg.admin.pin_hash)
    assert "246810" not in path.read_text()


def test_swap_lines_are_disabled(provisioned: tuple[Path, Path, str]) -> None:
    fstab = (provisioned[0] / "etc/fstab").read_text().splitlines()
    assert fstab[0] == "UUID=1234 / ext4 defaults 0 1"
    assert fstab[1].startswith("# disabled by ephemera") and "/swapfile" in fstab[1]


def test_kernel_clears_freed_pages_after_boot(provisioned: tuple[Path, Path, str]) -> None:
    extlinux = (provisioned[0] / "boot/extlinux/extlinux.conf").read_text()
    assert "      APPEND ${cbootargs} root=/dev/mmcblk0p1 rw init_on_free=1\n" in extlinux
    assert extlinux.count("init_on_free") == 1


def test_kernel_journal_usb_and_cups_settings(provisioned: tuple[Path, Path, str]) -> None:
    root = provisioned[0]
    sysctl = (root / "etc/sysctl.d/90-ephemera.conf").read_text()
    assert "fs.suid_dumpable=0" in sysctl and "kernel.core_pattern=|/bin/false" in sysctl
    assert "net.ipv4.ip_forward=0" in sysctl
    assert "Storage=volatile" in (root / "etc/systemd/journald.conf.d/90-ephemera.conf"
                                  ).read_text()
    assert "Storage=none" in (root / "etc/systemd/coredump.conf.d/90-ephemera.conf").read_text()
    usb = (root / "etc/modprobe.d/ephemera-no-usb-storage.conf").read_text()
    assert "install usb_storage /bin/false" in usb and "install uas /bin/false" in usb
    cupsd = (root / "etc/cups/cupsd.conf").read_text()
    assert "PreserveJobHistory No" in cupsd and "PreserveJobFiles No" in cupsd
    files = (root / "etc/cups/cups-files.conf").read_text()
    assert "RequestRoot /run/cups/spool" in files and "TempDir /run/cups/tmp" in files
    assert "CacheDir /run/cups/cache" in files


def test_no_cups_files_when_printing_is_off(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    tables = {k: v for k, v in BOOTH.items() if k != "printing"}
    assert provision("--config", booth_file(tmp_path, tables), "--root", root).returncode == 0
    assert not (root / "etc/cups").exists()


@pytest.mark.skipif(shutil.which("nft") is None, reason="nftables is not installed "
                    "(make system-deps installs it)")
def test_nftables_rules_pass_nft_check(provisioned: tuple[Path, Path, str]) -> None:
    root = provisioned[0]
    rules = root / "etc/nftables.conf"
    check = subprocess.run(["nft", "-c", "-f", str(rules)], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stderr
    text = rules.read_text()
    uid = ids(root, "passwd", "ephemera")
    assert "policy drop" in text and "192.168.44.0/24" in text
    assert f"meta skuid {{ {uid}, " in text and "counter drop" in text
    assert "chain forward {\n        type filter hook forward priority filter; policy drop;" in text
    assert "tcp dport { 8443 } accept" in text and "dport 22" not in text


def test_certificate_verifies_with_cryptography(provisioned: tuple[Path, Path, str]) -> None:
    tls_dir = provisioned[0] / "etc/ephemera/tls"
    ca = x509.load_pem_x509_certificate((tls_dir / "ca.crt").read_bytes())
    server = tls.load_issued((tls_dir / "server.key").read_bytes(),
                             (tls_dir / "server.crt").read_bytes())
    server.cert.verify_directly_issued_by(ca)
    assert tls.subject_alt_names(server.cert) == ({"booth-07.local"}, {"192.168.44.1"})
    usage = server.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert server.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    lifetime = server.cert.not_valid_after_utc - server.cert.not_valid_before_utc
    assert 390 <= lifetime.days <= 398
    signing = (tls_dir / "receipt-signing.key").read_bytes()
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    assert isinstance(load_pem_private_key(signing, None), ed25519.Ed25519PrivateKey)


def test_changed_address_reissues_only_the_server_certificate(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    assert provision("--config", booth_file(tmp_path), "--root", root).returncode == 0
    tls_dir = root / "etc/ephemera/tls"
    ca_before = (tls_dir / "ca.crt").read_bytes()
    cert_before = (tls_dir / "server.crt").read_bytes()
    moved = {**BOOTH, "lan": {"interface": "wlan0", "address": "192.168.45.1", "prefix": 24}}
    again = provision("--config", booth_file(tmp_path, moved), "--root", root)
    assert again.returncode == 0
    assert "rewrite /etc/ephemera/tls/server.crt" in again.stdout
    assert (tls_dir / "ca.crt").read_bytes() == ca_before
    assert (tls_dir / "server.crt").read_bytes() != cert_before
    cert = x509.load_pem_x509_certificate((tls_dir / "server.crt").read_bytes())
    assert tls.subject_alt_names(cert)[1] == {"192.168.45.1"}


def _kv(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_hotspot_files_are_what_an_isolated_access_point_needs(
        provisioned: tuple[Path, Path, str]) -> None:
    root = provisioned[0]
    hostapd = _kv((root / "etc/ephemera/hostapd.conf").read_text())
    assert hostapd["interface"] == ["wlan0"] and hostapd["ssid"] == ["Ephemera; booth:07"]
    assert hostapd["wpa"] == ["2"] and hostapd["wpa_key_mgmt"] == ["WPA-PSK SAE"]
    assert hostapd["rsn_pairwise"] == ["CCMP"] and hostapd["ieee80211w"] == ["1"]
    assert hostapd["wpa_passphrase"] == ["per-event-secret-7"]
    assert hostapd["ap_isolate"] == ["1"] and hostapd["country_code"] == ["DE"]
    assert hostapd["channel"] == ["11"]
    dns_text = (root / "etc/ephemera/dnsmasq.conf").read_text()
    dns = _kv(dns_text)
    assert dns["dhcp-range"] == ["192.168.44.10,192.168.44.250,255.255.255.0,2h"]
    assert dns["dhcp-option"] == ["option:router", "option:dns-server,192.168.44.1"]
    assert "no-resolv" in dns_text.splitlines() and "server" not in dns
    assert "/booth-07.local/192.168.44.1" in dns["address"]
    if shutil.which("dnsmasq"):
        check = subprocess.run(["dnsmasq", "--test", f"--conf-file={root}/etc/ephemera/"
                                "dnsmasq.conf"], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
    env = (root / "etc/ephemera/hotspot.env").read_text()
    assert "EPHEMERA_WIFI_ADDRESS=192.168.44.1/24" in env
    wifi = json.loads((root / "etc/ephemera/wifi.json").read_text())
    assert wifi["qr"] == r"WIFI:T:WPA;S:Ephemera\; booth\:07;P:per-event-secret-7;;"
    assert "unmanaged-devices=interface-name:wlan0" in (
        root / "etc/NetworkManager/conf.d/90-ephemera-hotspot.conf").read_text()


def test_wifi_qr_escapes_the_special_characters() -> None:
    assert wifi_qr_payload('a;b,c:d\\e"f', "p;w") == 'WIFI:T:WPA;S:a\\;b\\,c\\:d\\\\e\\"f;P:p\\;w;;'


def test_units_installed_enabled_and_lan_narrowed(provisioned: tuple[Path, Path, str]) -> None:
    root = provisioned[0]
    wants = root / "etc/systemd/system/multi-user.target.wants"
    for unit in ("ephemera.service", "ephemera-engines.service", "ephemera-hotspot.service"):
        assert (wants / unit).is_symlink(), unit
    dropin = (root / "etc/systemd/system/ephemera.service.d/50-provision.conf").read_text()
    assert "IPAddressAllow=\nIPAddressAllow=localhost\nIPAddressAllow=192.168.44.0/24" in dropin
    raw = tomllib.loads((root / "etc/ephemera/ephemera.toml").read_text())
    assert raw["lan"]["tls_cert"] == "/etc/ephemera/tls/server.crt"


def test_pin_hash_kept_while_the_pin_is_the_same_and_replaced_when_it_changes(
        tmp_path: Path) -> None:
    root = make_root(tmp_path)
    config = root / "etc/ephemera/ephemera.toml"
    assert provision("--config", booth_file(tmp_path), "--root", root).returncode == 0
    first = load_config(config, env={}).admin.pin_hash
    changed = {**BOOTH, "admin": {"pin": "112233"}}
    result = provision("--config", booth_file(tmp_path, changed), "--root", root)
    assert "rewrite /etc/ephemera/ephemera.toml" in result.stdout
    second = load_config(config, env={}).admin.pin_hash
    assert second != first and verify_pin("112233", second)
    # No PIN in the file: the hash set earlier (or by `ephemera admin-pin`) stays.
    unset = {**BOOTH, "admin": {"pin": ""}}
    again = provision("--config", booth_file(tmp_path, unset), "--root", root)
    assert "no changes" in again.stdout, again.stdout
    assert load_config(config, env={}).admin.pin_hash == second
