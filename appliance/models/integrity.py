"""Read a model or engine file and prove it is the one we pinned, in one step.

Why read-then-hash the same bytes: hashing the file and then letting a library open it by path
leaves a window in which the file can be swapped (time of check, time of use). Every backend
therefore reads the bytes once, hashes *those* bytes and hands the very same bytes to the
runtime; nothing re-opens the path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from appliance.models.backend import BackendError, ModelIntegrityError

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, streamed (for sidecars and listings, not for loading)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_verified(path: str | Path, expected_sha256: str, what: str = "model") -> bytes:
    """The file's bytes, only if their sha256 is ``expected_sha256``.

    Raises ``ModelIntegrityError`` naming the file and both hashes on a mismatch, and a plain
    ``BackendError`` when the file is missing or unreadable.
    """
    path = Path(path)
    expected = expected_sha256.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise BackendError(f"{what} {path}: the expected sha256 {expected_sha256!r} is not a "
                           "64-character hex digest")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BackendError(f"{what} {path} does not exist; build it with `ephemera build`") \
            from None
    except OSError as exc:
        raise BackendError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ModelIntegrityError(
            f"{what} {path} has sha256 {actual}, but {expected} is pinned for it; refusing to "
            f"load a file that is not the one built and checked (rebuild it with "
            f"`ephemera build --force`)")
    return data
