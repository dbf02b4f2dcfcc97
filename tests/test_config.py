"""Configuration: defaults, file + environment precedence, clear messages, unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import RETENTION_HARD_CAP_MINUTES, ConfigError, describe, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ephemera.toml"
    path.write_text(text)
    return path


def test_defaults_are_a_safe_development_profile() -> None:
    cfg = load_config(env={})
    assert cfg.mode == "development"
    assert cfg.kiosk.port == 8080
    assert cfg.lan.enabled is False
    assert cfg.retention.default_minutes == 15
    assert cfg.retention.hard_cap_minutes == RETENTION_HARD_CAP_MINUTES == 1440
    assert cfg.models.backend == "auto"
    assert cfg.store.quota_bytes == 512 << 20
    assert all(not __import__("ipaddress").ip_network(c).is_global for c in cfg.lan.allowed_cidrs)


def test_file_overrides_defaults_and_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[kiosk]\nport = 9000\nidle_timeout_s = 30\n'
                           '[store]\nquota_bytes = "256MiB"\n')
    cfg = load_config(path, env={})
    assert (cfg.kiosk.port, cfg.kiosk.idle_timeout_s, cfg.store.quota_bytes) == (
        9000, 30, 256 << 20)
    cfg = load_config(path, env={"EPHEMERA_KIOSK_PORT": "9100", "EPHEMERA_MODE": "strict",
                                 "EPHEMERA_LAN_ALLOWED_CIDRS": "192.168.4.0/24, 10.1.0.0/16"})
    assert cfg.kiosk.port == 9100  # environment wins over the file
    assert cfg.kiosk.idle_timeout_s == 30  # the file still wins over the default
    assert cfg.strict
    assert cfg.lan.allowed_cidrs == ("192.168.4.0/24", "10.1.0.0/16")


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    path = write(tmp_path, 'mode = "strict"\n')
    assert load_config(env={"EPHEMERA_CONFIG": str(path)}).mode == "strict"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("[kiosk]\nport = 70000\n", {}, "kiosk.port = 70000 (from file) is not allowed: "
                                        "expected an integer port between 1 and 65535"),
        ("", {"EPHEMERA_KIOSK_PORT": "eighty"}, "environment EPHEMERA_KIOSK_PORT"),
        ('mode = "production"\n', {}, "expected one of 'development', 'strict'"),
        ('[models]\nbackend = "cuda"\n', {}, "'auto', 'onnxruntime', 'tensorrt'"),
        ("[retention]\ndefault_minutes = 2000\n", {}, "from 1 to 1440 (24 hours)"),
        ("[retention]\nhard_cap_minutes = 0\n", {}, "retention.hard_cap_minutes = 0"),
        ('[store]\nquota_bytes = "lots"\n', {}, "a size in bytes or with a unit"),
        ('[lan]\nallowed_cidrs = ["8.8.8.0/24"]\n', {}, "private (LAN) networks only"),
        ('[lan]\nallowed_cidrs = ["192.168.1.0/33"]\n', {}, "'192.168.1.0/33' is not one"),
        ('[lan]\naddress = "192.168.1"\n', {}, "lan.address = '192.168.1'"),
        ('[lan]\nenabled = "yes"\n', {}, "expected true or false"),
        ('[admin]\npin_hash = "1234"\n', {}, "never the PIN itself"),
        ("[kiosk]\nidle_timeout_s = -5\n", {}, "a whole number greater than 0"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(
        tmp_path: Path, text: str, env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env=env)
    assert expected in str(info.value)


def test_unknown_keys_are_reported_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'prot' in \[kiosk\]; known keys: "
                                          r"idle_timeout_s, port, receipt_key"):
        load_config(write(tmp_path, "[kiosk]\nprot = 8080\n"), env={})
    with pytest.raises(ConfigError, match="unknown key 'kisok' in the top level"):
        load_config(write(tmp_path, "[kisok]\nport = 8080\n"), env={})


def test_cross_checks(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"exceeds retention\.hard_cap_minutes"):
        load_config(write(tmp_path, "[retention]\ndefault_minutes = 120\n"
                                    "hard_cap_minutes = 60\n"), env={})
    with pytest.raises(ConfigError, match=r"needs lan\.interface"):
        load_config(write(tmp_path, "[lan]\nenabled = true\n"), env={})
    with pytest.raises(ConfigError, match="HTTPS only"):  # strict: provisioned files only
        load_config(write(tmp_path, 'mode = "strict"\n[lan]\nenabled = true\n'
                                    'interface = "wlan0"\n'), env={})
    # Development makes its certificate on first run (tests/web/test_lan_netns.py).
    assert load_config(write(tmp_path, '[lan]\nenabled = true\ninterface = "wlan0"\n'),
                       env={}).lan.tls_cert == ""


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(write(tmp_path, "[kiosk\nport = 1\n"), env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


def test_every_setting_is_documented() -> None:
    rows = {key: help_text for key, _default, help_text in describe()}
    required = {"kiosk.port", "lan.interface", "lan.address", "lan.port", "lan.tls_cert",
                "lan.tls_key", "lan.allowed_cidrs", "store.path", "store.quota_bytes",
                "retention.default_minutes", "retention.hard_cap_minutes", "queue.depth",
                "models.backend", "models.engines_dir", "mode", "admin.pin_hash",
                "kiosk.idle_timeout_s", "secure.memfd_secret"}
    assert required <= set(rows)
    assert all(rows.values())


def test_settings_say_what_reads_them(tmp_path: Path) -> None:
    rows = {key: help_text for key, _default, help_text in describe()}
    for key in ("lan.interface", "lan.port", "lan.tls_cert", "admin.pin_hash"):
        assert "nothing reads" not in rows[key], key  # the LAN listener, the admin page
    assert "/admin" in rows["admin.pin_hash"]
    assert "nothing reads" not in rows["lan.allowed_cidrs"]  # the address filter reads it
    assert "nothing reads" not in rows["kiosk.idle_timeout_s"]  # the kiosk screens read it
    with pytest.raises(ConfigError) as bad_pin:
        load_config(write(tmp_path, '[admin]\npin_hash = "1234"\n'), env={})
    message = str(bad_pin.value)
    assert "never the PIN itself" in message and "admin.pin_hash" in message
    with pytest.raises(ConfigError, match="greater than 0"):
        load_config(env={"EPHEMERA_KIOSK_IDLE_TIMEOUT_S": "0"})


def test_every_command_a_message_names_exists() -> None:
    """Help and error texts send people to `ephemera <verb>`: each verb must be a real one."""
    import re

    from appliance.cli import build_parser

    verbs = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    root = Path(__file__).resolve().parent.parent
    texts = [p.read_text(encoding="utf-8") for p in sorted((root / "appliance").rglob("*.py"))]
    texts += [help_text for _key, _default, help_text in describe()]
    named = {m for text in texts for m in re.findall(r"`ephemera ([a-z][a-z-]*)", text)}
    assert named and named <= verbs, sorted(named - verbs)


def test_memfd_secret_is_a_setting(tmp_path: Path) -> None:
    assert load_config(env={}).secure.memfd_secret is True
    assert load_config(env={"EPHEMERA_SECURE_MEMFD_SECRET": "0"}).secure.memfd_secret is False
    cfg = load_config(write(tmp_path, "[secure]\nmemfd_secret = false\n"), env={})
    assert cfg.secure.memfd_secret is False


def test_cli_reports_config_errors_with_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[kiosk]\nport = 0\n")
    assert main(["--config", str(path), "config"]) == 2
    assert "kiosk.port = 0" in capsys.readouterr().err


def test_cli_config_prints_effective_values(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[queue]\ndepth = 7\n")
    assert main(["--config", str(path), "config"]) == 0
    assert "queue.depth = 7" in capsys.readouterr().out
