"""strace proof at module level: decoding, encoding and storing a photo opens no file for
writing anywhere except the tmpfs store, and OpenCV's .hdr temp-file fallback writes nothing.
(The end-to-end trace of a whole job through HTTP is in the web tests.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from appliance import OPENCV_NO_TEMP_PATH

ROOT = Path(__file__).resolve().parent.parent
STRACE = shutil.which("strace")
WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
PATH_CALLS = re.compile(r'^\d+\s+(openat|open|creat|mkdir|mkdirat|rename|renameat2?|link|linkat|'
                        r'symlink|symlinkat|truncate)\((?:AT_FDCWD, )?"([^"]*)"(.*)$')

JOB = """
import sys
import cv2, numpy as np
from PIL import Image  # noqa: only to build the upload in memory
import io
from appliance.media.decode import decode_image
from appliance.media.encode import encode_image
from appliance.secure.buffers import REGISTRY
from appliance.secure.crypto import JobKey
from appliance.secure.store import RamStore

rgb = (np.indices((120, 160)).sum(axis=0) % 256).astype(np.uint8)
out = io.BytesIO()
exif = Image.Exif(); exif[0x0112] = 6
Image.fromarray(np.dstack([rgb, rgb[::-1], rgb[:, ::-1]])).save(out, "JPEG", exif=exif)
upload = REGISTRY.allocate(len(out.getbuffer()), owner="job-1")
upload.view()[:] = np.frombuffer(out.getbuffer(), np.uint8)
print("START", flush=True)
_, bgr = decode_image(upload.memoryview(), "job-1")
_, encoded = encode_image(bgr, "jpeg", "job-1")
store = RamStore(sys.argv[1], 1 << 24, 4)
key = JobKey.generate("job-1")
store.put("job-1", "result", encoded, key)
back = store.get("job-1", "result", key)
assert bytes(back.view()) == bytes(encoded)
store.delete_job("job-1")
try:
    cv2.imdecode(np.frombuffer(bytes.fromhex(sys.argv[2]), np.uint8), cv2.IMREAD_UNCHANGED)
except cv2.error:
    pass
try:
    cv2.imencode(".hdr", np.full((8, 8, 3), 0.5, np.float32))
except cv2.error:
    pass
REGISTRY.release_all()
print("END", flush=True)
"""


def written_paths(trace: str) -> list[str]:
    """Paths opened or created for writing after the START marker."""
    paths = []
    started = False
    for line in trace.splitlines():
        if 'write(1, "START' in line:
            started = True
        match = PATH_CALLS.match(line)
        if not started or not match:
            continue
        call, path, rest = match.groups()
        if call.startswith("open") and not WRITE_FLAGS.search(rest):
            continue
        paths.append(f"{call} {path} {rest.strip()}")
    return paths


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_a_photo_through_decode_encode_and_store_writes_only_to_tmpfs(tmp_path: Path) -> None:
    make_hdr = ("import cv2, numpy as np, sys; ok, b = cv2.imencode('.hdr', "
                "np.full((8, 8, 3), 0.5, np.float32)); sys.stdout.write(b.tobytes().hex())")
    hdr_hex = subprocess.run([sys.executable, "-c", make_hdr], capture_output=True, text=True,
                             check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    store = Path("/dev/shm") / f"ephemera-strace-{uuid.uuid4().hex}"
    log = tmp_path / "trace.txt"
    try:
        result = subprocess.run(
            [str(STRACE), "-f", "-qq", "-s", "200", "-o", str(log),
             "-e", "trace=open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,link,"
                   "linkat,symlink,symlinkat,truncate,write",
             sys.executable, "-c", JOB, str(store), hdr_hex],
            capture_output=True, text=True, timeout=120, cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split() == ["START", "END"]
        attempts = written_paths(log.read_text())
        succeeded = [a for a in attempts if "= -1 " not in a]
        outside = [a for a in succeeded if not a.split(" ", 2)[1].startswith(str(store))]
        assert outside == [], outside
        assert any(a.startswith("openat") for a in succeeded), "the store write was not traced"
        # OpenCV did try its temp-file fallback for .hdr, and the impossible path stopped it.
        blocked = [a for a in attempts if a.split(" ", 2)[1].startswith(OPENCV_NO_TEMP_PATH)]
        assert blocked and all("= -1 " in a for a in blocked)
    finally:
        shutil.rmtree(store, ignore_errors=True)
