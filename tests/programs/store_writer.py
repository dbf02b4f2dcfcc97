"""Write three jobs' blobs into a RAM store, then wait to be killed (``kill -9``).

``python store_writer.py STORE_DIR CANARY``; prints "written" when the blobs are stored. Run by
tests/test_secure_store.py to show what a crash leaves behind.
"""

from __future__ import annotations

import sys

from appliance.secure.buffers import REGISTRY
from appliance.secure.crypto import JobKey
from appliance.secure.store import RamStore


def main(store_dir: str, canary_text: str) -> None:
    store = RamStore(store_dir, 1 << 22, 8)
    canary = canary_text.encode() * 200
    for n in range(3):
        owner = f"job-{n}"
        key = JobKey.generate(owner)
        buf = REGISTRY.allocate(len(canary), owner=owner)
        buf.view()[:] = memoryview(canary)
        store.put(owner, f"blob-{n}", buf.memoryview(), key)
    print("written", flush=True)
    sys.stdin.read()  # wait to be killed


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
