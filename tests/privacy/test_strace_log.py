"""The strace reader sees what it must: a clean result means something."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.strace_log import STRACE_ARGS, off_box, outside, parse

pytestmark = pytest.mark.skipif(shutil.which("strace") is None,
                                reason="strace is not installed (make system-deps installs it)")

CLIENT = Path(__file__).resolve().parent.parent / "programs" / "strace_client.py"


def test_a_real_connect_write_tmpfile_and_unlink_are_seen(tmp_path: Path, ram_dir: Path
                                                          ) -> None:
    log = tmp_path / "trace.log"
    written = tmp_path / "written.txt"
    ram_dir.mkdir()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        subprocess.run(["strace", *STRACE_ARGS, "-o", str(log), sys.executable, str(CLIENT),
                        str(port), str(written), str(ram_dir)], check=True)
    trace = parse(log)
    assert any(p.family == "AF_INET" and p.address == "127.0.0.1" for p in trace.peers)
    assert off_box(trace) == []  # loopback is on the box
    flagged = outside(trace, ("/dev/null",), ())
    assert [w for w in flagged if w.call.startswith("open") and str(written) in w.paths]
    # A file with no name is still a file: O_TMPFILE in a directory counts as a write there.
    assert [w for w in flagged if "O_TMPFILE" in w.line and str(ram_dir) in w.paths]
    assert [w for w in flagged if w.call.startswith("unlink") and str(written) in w.paths]


def test_an_address_off_the_box_is_flagged(tmp_path: Path) -> None:
    # Canned strace output: nothing is ever sent to an address that is not this machine's.
    log = tmp_path / "trace.log"
    log.write_text(
        '101 connect(7, {sa_family=AF_INET, sin_port=htons(443), '
        'sin_addr=inet_addr("198.51.100.7")}, 16) = -1 ENETUNREACH (Network is unreachable)\n'
        '101 connect(8, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), '
        'inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH\n'
        '101 connect(9, {sa_family=AF_UNIX, sun_path="/run/systemd/notify"}, 22) = 0\n'
        '101 sendto(10, "\\1\\0", 2, 0, {sa_family=AF_INET, sin_port=htons(53), '
        'sin_addr=inet_addr("127.0.0.53")}, 16) = 2\n'
        '101 sendto(11, "abc", 3, MSG_NOSIGNAL, NULL, 0) = 3\n')
    trace = parse(log)
    assert [(p.family, p.address) for p in trace.peers] == [
        ("AF_INET", "198.51.100.7"), ("AF_INET6", "2001:db8::1"),
        ("AF_UNIX", '"/run/systemd/notify"'), ("AF_INET", "127.0.0.53")]
    assert [p.address for p in off_box(trace)] == ["198.51.100.7", "2001:db8::1"]
