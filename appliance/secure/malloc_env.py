"""The allocator settings that make freed memory get overwritten, and a re-exec to apply them.

Why an environment and not code: glibc and CPython read these once, when the process starts, so
they must be in the environment of the process that will hold guest data (the systemd unit sets
them; ``ephemera serve`` re-executes itself with them when started by hand).

* ``PYTHONMALLOC=malloc``: CPython's small-object allocator (pymalloc, objects <= 512 bytes) never
  clears freed blocks; routing them to glibc puts them under the settings below.
* ``MALLOC_PERTURB_``: glibc fills every freed chunk with this byte (and new ones with its
  complement), so a decoder's or a library's freed buffer does not keep its pixels.
* ``GLIBC_TUNABLES=glibc.malloc.tcache_count=0``: chunks freed into the per-thread cache are not
  perturbed; with the cache off every size is.
* ``MALLOC_MMAP_THRESHOLD_=131072``: glibc otherwise raises its mmap threshold after a large free,
  so later large buffers come from the heap and survive there; a fixed threshold keeps big
  buffers in mmaps, which the kernel discards on free.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

TCACHE_OFF = "glibc.malloc.tcache_count=0"
PERTURB_BYTE = "204"  # 0xCC: freed chunks read as 0xCC..., new ones as 0x33...
MALLOC_ENV: dict[str, str] = {
    "PYTHONMALLOC": "malloc",
    "MALLOC_PERTURB_": PERTURB_BYTE,
    "GLIBC_TUNABLES": TCACHE_OFF,
    "MALLOC_MMAP_THRESHOLD_": "131072",
}
REEXEC_MARKER = "EPHEMERA_MALLOC_REEXEC"


def missing_malloc_env(env: Mapping[str, str] | None = None) -> list[str]:
    """Names of the settings that are absent or wrong in ``env`` (default: this process's)."""
    env = os.environ if env is None else env
    missing = []
    if env.get("PYTHONMALLOC") != "malloc":
        missing.append("PYTHONMALLOC")
    perturb = env.get("MALLOC_PERTURB_", "")
    if not (perturb.isdigit() and int(perturb) % 256 > 0):
        missing.append("MALLOC_PERTURB_")
    tunables = env.get("GLIBC_TUNABLES", "").replace(",", ":").split(":")
    if TCACHE_OFF not in tunables:
        missing.append("GLIBC_TUNABLES")
    if env.get("MALLOC_MMAP_THRESHOLD_") != MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]:
        missing.append("MALLOC_MMAP_THRESHOLD_")
    return missing


def with_malloc_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` with the settings in place (other GLIBC_TUNABLES entries are kept)."""
    result = dict(os.environ if env is None else env)
    for name in missing_malloc_env(result):
        if name == "GLIBC_TUNABLES" and result.get("GLIBC_TUNABLES"):
            kept = [t for t in result["GLIBC_TUNABLES"].split(":")
                    if t and not t.startswith("glibc.malloc.tcache_count=")]
            result[name] = ":".join([*kept, TCACHE_OFF])
        else:
            result[name] = MALLOC_ENV[name]
    return result


def shell_exports() -> str:
    """The settings as lines for a shell or a systemd ``Environment=`` (documentation, doctor)."""
    return "\n".join(f"{name}={value}" for name, value in MALLOC_ENV.items())


def reexec_with_malloc_env(argv: Sequence[str] | None = None) -> None:
    """Replace this process with itself under the malloc settings, if they are missing.

    ``argv`` is what follows the interpreter (default: this process's own, ``-m`` included).
    Returns only when nothing was missing. Refuses to loop: if a re-executed process still
    lacks them (something strips the environment), it raises instead of re-executing again.
    Call it first thing, before any guest data exists (``execve`` discards this process).
    """
    missing = missing_malloc_env()
    if not missing:
        return
    if os.environ.get(REEXEC_MARKER) == "1":
        raise RuntimeError("the malloc settings are still missing after re-executing "
                           f"({', '.join(missing)}); set them in the service environment:\n"
                           + shell_exports())
    env = with_malloc_env()
    env[REEXEC_MARKER] = "1"
    # orig_argv keeps "-m appliance" and interpreter options, which sys.argv loses.
    args = list(sys.orig_argv[1:] if argv is None else argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *args], env)
