"""Deletion receipts: what the booth wiped for a guest, signed with the booth's own key.

Why signed: "we deleted it" is a promise; a receipt signed by the booth's Ed25519 key is a
statement the booth cannot later deny, and anyone with the booth's public key can check that
nobody edited it (``ephemera verify-receipt``). A receipt says how many photos, results and
keys were wiped and when, with a short random id; it never carries image data, a token, a job
id or anything else that could identify the guest.

The key is made at first start in development, in the user's state directory (never in the RAM
store: it must outlive a restart so old receipts still verify), file mode 0600; on a device
provisioning puts it in place. A key file that others can read is refused.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import secrets
import stat
import sys
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

RECEIPT_VERSION = 1
ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud or typed


class ReceiptKeyError(RuntimeError):
    """The signing key is missing (strict mode), unreadable or readable by others."""


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ReceiptKeyError(f"the receipt key {path} has mode {mode:o}; it must be readable "
                              f"by its owner only: chmod 600 {path}")


def load_key(path: str | Path, *, create: bool) -> Ed25519PrivateKey:
    """The booth's signing key; made (mode 0600, folder 0700) when missing and ``create``."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise ReceiptKeyError(f"no receipt key at {path}: provisioning puts one there")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_key(path, create=False)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        return key
    _check_private(path)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ReceiptKeyError(f"{path} holds a {type(loaded).__name__}, not an Ed25519 key")
    return loaded


def public_pem(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def canonical(payload: dict[str, Any]) -> bytes:
    """The exact bytes that are signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def new_receipt_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(8))


def sign_receipt(key: Ed25519PrivateKey, *, photos: int, results: int, keys: int,
                 when: dt.datetime | None = None) -> dict[str, Any]:
    """A signed receipt for one wipe: counts and a time, nothing about the guest."""
    when = when or dt.datetime.now(dt.timezone.utc)
    payload = {
        "v": RECEIPT_VERSION,
        "receipt": new_receipt_id(),
        "wiped_at": when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "photos": int(photos),
        "results": int(results),
        "keys": int(keys),
        "booth": key_fingerprint(key.public_key()),
    }
    signature = key.sign(canonical(payload))
    return {"payload": payload,
            "signature": base64.urlsafe_b64encode(signature).decode().rstrip("=")}


def verify_receipt(receipt: dict[str, Any], public: Ed25519PublicKey) -> bool:
    """True only when the receipt's payload is exactly what the key signed."""
    try:
        payload = receipt["payload"]
        text = str(receipt["signature"])
        signature = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        public.verify(signature, canonical(payload))
    except (KeyError, TypeError, ValueError, InvalidSignature):
        return False
    return True


# -- ephemera verify-receipt --------------------------------------------------------------------

def _public_key(args: argparse.Namespace) -> Ed25519PublicKey:
    if args.public_key:
        loaded = serialization.load_pem_public_key(Path(args.public_key).read_bytes())
        if not isinstance(loaded, Ed25519PublicKey):
            raise ReceiptKeyError(f"{args.public_key} is not an Ed25519 public key")
        return loaded
    from appliance.config import load_config

    return load_key(load_config(args.config).kiosk.receipt_key, create=False).public_key()


def _cmd_verify(args: argparse.Namespace) -> int:
    raw = sys.stdin.buffer.read() if args.receipt == "-" else Path(args.receipt).read_bytes()
    try:
        receipt = json.loads(raw)
        public = _public_key(args)
    except (ValueError, OSError, ReceiptKeyError) as exc:
        print(f"ephemera verify-receipt: {exc}", file=sys.stderr)
        return 2
    if isinstance(receipt, dict) and "receipt" in receipt and "payload" not in receipt:
        receipt = receipt["receipt"]  # the whole answer of the screens' delete call
    if not isinstance(receipt, dict) or not verify_receipt(receipt, public):
        print("INVALID: this receipt was not signed by this booth, or it was changed")
        return 1
    payload = receipt["payload"]
    print(f"valid receipt {payload['receipt']}: {payload['photos']} photo(s), "
          f"{payload['results']} result(s), {payload['keys']} key(s) wiped at "
          f"{payload['wiped_at']} (booth {payload['booth']})")
    return 0


def _cmd_public_key(args: argparse.Namespace) -> int:
    from appliance.config import load_config

    try:
        key = load_key(load_config(args.config).kiosk.receipt_key, create=False)
    except ReceiptKeyError as exc:
        print(f"ephemera receipt-key: {exc}", file=sys.stderr)
        return 1
    print(public_pem(key), end="")
    return 0


def add_verb(verbs: Any) -> None:
    verify = verbs.add_parser("verify-receipt",
                              help="check a deletion receipt's signature (exit 0 valid, 1 not)")
    verify.add_argument("receipt", help="the receipt as JSON (a file, or - for stdin)")
    verify.add_argument("--public-key", metavar="PEM",
                        help="the booth's public key (default: this booth's own key)")
    verify.set_defaults(func=_cmd_verify)
    public = verbs.add_parser("receipt-key", help="print the booth's receipt public key (PEM)")
    public.set_defaults(func=_cmd_public_key)
