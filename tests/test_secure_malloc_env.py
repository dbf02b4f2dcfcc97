"""The malloc environment: detection, merging, and a re-exec that really applies it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from appliance.secure.malloc_env import MALLOC_ENV, missing_malloc_env, with_malloc_env

ROOT = Path(__file__).resolve().parent.parent


def test_missing_names_each_absent_or_wrong_setting() -> None:
    assert missing_malloc_env({}) == ["PYTHONMALLOC", "MALLOC_PERTURB_", "GLIBC_TUNABLES",
                                      "MALLOC_MMAP_THRESHOLD_"]
    assert missing_malloc_env(dict(MALLOC_ENV)) == []
    wrong = dict(MALLOC_ENV, MALLOC_PERTURB_="0", PYTHONMALLOC="pymalloc")
    assert missing_malloc_env(wrong) == ["PYTHONMALLOC", "MALLOC_PERTURB_"]
    other_tunables = dict(MALLOC_ENV, GLIBC_TUNABLES="glibc.malloc.arena_max=2:"
                                                     "glibc.malloc.tcache_count=0")
    assert missing_malloc_env(other_tunables) == []


def test_with_malloc_env_keeps_other_tunables_and_variables() -> None:
    env = with_malloc_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:"
                                             "glibc.malloc.tcache_count=7", "HOME": "/x"})
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0"
    assert env["HOME"] == "/x" and missing_malloc_env(env) == []


FREED_PROBE = """
import ctypes, json, os, sys
from appliance.secure.malloc_env import MALLOC_ENV, reexec_with_malloc_env
if sys.argv[1] == "reexec":
    reexec_with_malloc_env()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
chunk = libc.malloc(65536)
guard = libc.malloc(64)  # keeps the chunk from merging into the top of the heap
ctypes.memset(chunk, 0x41, 65536)
libc.free(chunk)
after_free = ctypes.string_at(chunk + 4096, 256)  # reading freed heap on purpose
print(json.dumps({"env": {k: os.environ.get(k) for k in MALLOC_ENV},
                  "marker": os.environ.get("EPHEMERA_MALLOC_REEXEC"),
                  "argv": sys.argv[1:], "freed": sorted(set(after_free))}))
"""


def run_probe(mode: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-c", FREED_PROBE, mode, "--x"],
                            capture_output=True, text=True, cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_reexec_applies_the_settings_and_freed_heap_memory_is_overwritten() -> None:
    control = run_probe("plain")
    assert control["freed"] == [0x41]  # without the settings, freed memory keeps its bytes
    seen = run_probe("reexec")
    assert seen["env"] == MALLOC_ENV and seen["marker"] == "1"
    assert seen["argv"] == ["reexec", "--x"]  # the same command line, -c included
    assert seen["freed"] == [int(MALLOC_ENV["MALLOC_PERTURB_"])]
