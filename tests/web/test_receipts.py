"""Deletion receipts: signed with the booth's Ed25519 key, made once with mode 0600, refused
when others can read it; a receipt verifies, and one changed byte breaks it."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.web.receipts import (
    ReceiptKeyError,
    canonical,
    load_key,
    public_pem,
    sign_receipt,
    verify_receipt,
)

REPO = Path(__file__).resolve().parents[2]


def test_key_is_made_once_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "receipt-key.pem"
    with pytest.raises(ReceiptKeyError, match="provisioning"):
        load_key(path, create=False)
    key = load_key(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert public_pem(load_key(path, create=True)) == public_pem(key)
    path.chmod(0o644)
    with pytest.raises(ReceiptKeyError, match="chmod 600"):
        load_key(path, create=False)


def test_receipt_carries_counts_only_and_any_changed_byte_breaks_it(tmp_path: Path) -> None:
    key = load_key(tmp_path / "k.pem", create=True)
    receipt = sign_receipt(key, photos=2, results=1, keys=3)
    payload = receipt["payload"]
    assert set(payload) == {"v", "receipt", "wiped_at", "photos", "results", "keys", "booth"}
    assert len(payload["receipt"]) == 8 and payload["wiped_at"].endswith("Z")
    assert verify_receipt(receipt, key.public_key())
    signed = canonical(payload)
    for index in range(len(signed)):  # every single byte of what was signed matters
        changed = bytearray(signed)
        changed[index] ^= 0x01
        try:
            altered = json.loads(changed)
        except ValueError:
            continue  # no longer JSON: no receipt at all
        assert not verify_receipt({"payload": altered, "signature": receipt["signature"]},
                                  key.public_key()), index
    other = load_key(tmp_path / "other.pem", create=True)
    assert not verify_receipt(receipt, other.public_key())
    assert not verify_receipt({"payload": payload, "signature": "!!"}, key.public_key())


def test_verify_receipt_command(tmp_path: Path) -> None:
    key_path = tmp_path / "k.pem"
    key = load_key(key_path, create=True)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(sign_receipt(key, photos=1, results=1, keys=2)))
    env = {"EPHEMERA_KIOSK_RECEIPT_KEY": str(key_path), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(REPO)}

    def verify(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "appliance", "verify-receipt", str(path),
                               *extra], env=env, capture_output=True, text=True, timeout=60)

    done = verify(good)
    assert done.returncode == 0 and done.stdout.startswith("valid receipt"), done
    bad = tmp_path / "bad.json"
    bad.write_text(good.read_text().replace('"photos": 1', '"photos": 0'))
    done = verify(bad)
    assert done.returncode == 1 and "INVALID" in done.stdout
    public = tmp_path / "public.pem"
    public.write_text(public_pem(key))
    assert verify(good, "--public-key", str(public)).returncode == 0
