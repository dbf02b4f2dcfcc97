"""AES-256-GCM with a fresh key per job, where neither the key nor the plaintext is ever ``bytes``.

Why this shape: a Python ``bytes`` object is immutable, so whatever it held stays in freed heap
memory until something else happens to reuse it. Here the key is drawn by ``getrandom(2)``
straight into a secure buffer, handed to ``cryptography`` as a ``memoryview`` (its ``AES``
class keeps the object it is given, no copy), and plaintext only ever moves through
``update_into`` between buffers we own. The ciphertext is not secret and lives in a plain
``bytearray``.

Residual copies (see docs/THREAT_MODEL.md): OpenSSL expands the key into its cipher context
(the AES key schedule and the GHASH key) for the life of one encrypt/decrypt call; OpenSSL
cleanses that context when it is freed, which happens as soon as the context object is dropped
(below, at the end of each function).

Blob layout: ``b"EPH1" | nonce (12) | ciphertext | tag (16)``. The nonce is random per blob (a
key encrypts a handful of blobs, far below the 2**32 random-nonce bound); the associated data
binds a blob to its job and name, so a blob moved to another job or name fails to decrypt.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from appliance.secure.buffers import REGISTRY, SecureBuffer

KEY_LABEL = "job-key"  # the label of a job key's secure buffer

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
MAGIC = b"EPH1"
HEADER_BYTES = len(MAGIC) + NONCE_BYTES
OVERHEAD = HEADER_BYTES + TAG_BYTES

_libc = ctypes.CDLL(None, use_errno=True)
_libc.getrandom.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
_libc.getrandom.restype = ctypes.c_ssize_t


class DecryptionError(Exception):
    """A blob is damaged, was written with another key, or belongs to another job or name."""


def _fill_random(buffer: SecureBuffer, nbytes: int) -> None:
    """Kernel randomness written directly into the buffer (``os.urandom`` would make bytes)."""
    done = 0
    while done < nbytes:
        got = _libc.getrandom(ctypes.c_void_p(buffer.address + done), nbytes - done, 0)
        if got < 0:
            errno = ctypes.get_errno()
            if errno == 4:  # EINTR
                continue
            raise OSError(errno, os.strerror(errno))
        done += got


def associated_data(job_id: str, name: str) -> bytes:
    """What a blob is bound to (not secret: ids and names, never content)."""
    return b"ephemera-blob\0" + job_id.encode() + b"\0" + name.encode()


class JobKey:
    """A job's 256-bit key, held only in a secure buffer owned by the job."""

    def __init__(self, buffer: SecureBuffer) -> None:
        self._buffer = buffer

    @classmethod
    def generate(cls, owner: str) -> JobKey:
        buffer = REGISTRY.allocate(KEY_BYTES, owner=owner, label=KEY_LABEL)
        try:
            _fill_random(buffer, KEY_BYTES)
        except BaseException:
            buffer.release()
            raise
        return cls(buffer)

    @property
    def owner(self) -> str:
        return self._buffer.owner

    @property
    def released(self) -> bool:
        return self._buffer.released

    def _algorithm(self) -> algorithms.AES:
        if self._buffer.released:
            raise ValueError("this job's key was already released")
        return algorithms.AES(self._buffer.memoryview())

    def encrypt(self, plaintext: Any, aad: bytes) -> bytearray:
        """Encrypt a bytes-like object (a secure-buffer view) into a new blob ``bytearray``."""
        source = memoryview(plaintext).cast("B")
        if source.nbytes == 0:
            raise ValueError("nothing to encrypt: the plaintext is empty")
        blob = bytearray(OVERHEAD + source.nbytes)
        nonce = os.urandom(NONCE_BYTES)
        blob[: len(MAGIC)] = MAGIC
        blob[len(MAGIC): HEADER_BYTES] = nonce
        encryptor = Cipher(self._algorithm(), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(aad)
        body = memoryview(blob)[HEADER_BYTES: HEADER_BYTES + source.nbytes]
        encryptor.update_into(source, body)
        encryptor.finalize()
        blob[HEADER_BYTES + source.nbytes:] = encryptor.tag
        del encryptor
        body.release()
        source.release()
        return blob

    def decrypt(self, blob: Any, aad: bytes, owner: str, label: str = "plaintext") -> SecureBuffer:
        """Decrypt a blob into a new secure buffer of ``owner`` (``.nbytes`` = plaintext length).

        GCM releases plaintext before the tag is checked, so on a bad tag the buffer is wiped and
        released before the error is raised: nothing unauthenticated survives.
        """
        data = memoryview(blob).cast("B")
        if data.nbytes <= OVERHEAD or bytes(data[: len(MAGIC)]) != MAGIC:
            raise DecryptionError("not an Ephemera blob (bad header or too short)")
        size = data.nbytes - OVERHEAD
        nonce = bytes(data[len(MAGIC): HEADER_BYTES])
        tag = bytes(data[HEADER_BYTES + size:])
        out = REGISTRY.allocate(size, owner=owner, label=label)
        try:
            decryptor = Cipher(self._algorithm(), modes.GCM(nonce)).decryptor()
            decryptor.authenticate_additional_data(aad)
            target = out.memoryview()
            decryptor.update_into(data[HEADER_BYTES: HEADER_BYTES + size], target)
            target.release()
            decryptor.finalize_with_tag(tag)
            del decryptor
        except InvalidTag:
            out.release()
            raise DecryptionError("blob failed authentication: wrong key, job or name, or "
                                  "the file was altered") from None
        except BaseException:
            out.release()
            raise
        finally:
            data.release()
        return out

    def release(self) -> None:
        """Wipe and unmap the key. Idempotent."""
        self._buffer.release()

    def __repr__(self) -> str:
        state = "released" if self._buffer.released else "live"
        return f"JobKey(owner={self.owner!r}, {state})"
