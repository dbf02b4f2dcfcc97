"""The admin PIN: stored as an scrypt hash only, verified in constant time, set by
``ephemera admin-pin`` without disturbing the rest of the configuration file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.secure.pin import PinError, hash_pin, parse_pin_hash, verify_pin
from appliance.secure.pin_cli import set_toml_string

REPO = Path(__file__).resolve().parents[1]


def test_hash_verifies_only_its_pin() -> None:
    stored = hash_pin("482913")
    assert stored.startswith("scrypt$15$8$1$") and "482913" not in stored
    assert verify_pin("482913", stored)
    assert not verify_pin("482914", stored)
    assert not verify_pin("", stored)


def test_fresh_salt_each_time_and_cost_recorded() -> None:
    a, b = hash_pin("123456"), hash_pin("123456")
    assert a != b and verify_pin("123456", a) and verify_pin("123456", b)
    log2_n, r, p, salt, digest = parse_pin_hash(a)
    assert (log2_n, r, p, len(salt), len(digest)) == (15, 8, 1, 16, 32)


FULL_WIDTH_DIGITS = "\uff11\uff12\uff13\uff14\uff15\uff16"


@pytest.mark.parametrize("pin", ["12345", "1234567890123", "12a456", FULL_WIDTH_DIGITS,
                                 " 123456"])
def test_bad_pins_are_refused(pin: str) -> None:
    with pytest.raises(PinError, match="6 to 12 digits"):
        hash_pin(pin)


@pytest.mark.parametrize("stored", ["123456", "scrypt$15$8$1$xx", "bcrypt$1$2$3$4$5",
                                    "scrypt$40$8$1$AAAA$AAAA"])
def test_malformed_hashes_are_refused(stored: str) -> None:
    with pytest.raises(PinError):
        verify_pin("123456", stored)


def test_set_toml_string_keeps_every_other_line() -> None:
    text = ("# booth\nmode = \"strict\"\n\n[admin]\n# the PIN\npin_hash = \"old\"\n\n"
            "[kiosk]\nport = 8080\n")
    out = set_toml_string(text, "admin", "pin_hash", "scrypt$new")
    assert out == text.replace('pin_hash = "old"', 'pin_hash = "scrypt$new"')
    assert set_toml_string("mode = \"strict\"\n", "admin", "pin_hash", "h") == (
        "mode = \"strict\"\n\n[admin]\npin_hash = \"h\"\n")
    assert set_toml_string("[admin]\n[kiosk]\nport = 1\n", "admin", "pin_hash", "h") == (
        "[admin]\npin_hash = \"h\"\n[kiosk]\nport = 1\n")


def run_cli(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", *args], input=stdin, text=True,
                          capture_output=True, cwd=REPO, check=False, timeout=60)


def test_cli_writes_only_the_hash(tmp_path: Path) -> None:
    config = tmp_path / "ephemera.toml"
    config.write_text("# my booth\n[kiosk]\nport = 8081\n")
    config.chmod(0o640)
    result = run_cli("--config", str(config), "admin-pin", "--stdin", stdin="907153\n")
    assert result.returncode == 0, result.stderr
    text = config.read_text()
    assert "907153" not in text and text.startswith("# my booth\n[kiosk]\nport = 8081\n")
    cfg = load_config(config, env={})
    assert cfg.kiosk.port == 8081 and verify_pin("907153", cfg.admin.pin_hash)
    assert config.stat().st_mode & 0o777 == 0o640


def test_cli_refuses_a_bad_pin_and_leaves_the_file(tmp_path: Path) -> None:
    config = tmp_path / "ephemera.toml"
    config.write_text("[kiosk]\nport = 8081\n")
    result = run_cli("--config", str(config), "admin-pin", "--stdin", stdin="12ab\n")
    assert result.returncode == 2 and "6 to 12 digits" in result.stderr
    assert config.read_text() == "[kiosk]\nport = 8081\n"
