"""Do, once each, what the strace reader must see: a loopback connection, a file written, an
anonymous O_TMPFILE file and an unlink. ``python strace_client.py PORT FILE TMPFILE_DIR``."""

from __future__ import annotations

import os
import socket
import sys


def main(port: int, written: str, tmpfile_dir: str) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(b"x")
    with open(written, "w") as handle:
        handle.write("x")
    fd = os.open(tmpfile_dir, os.O_TMPFILE | os.O_WRONLY, 0o600)
    os.write(fd, b"never named")
    os.close(fd)
    os.unlink(written)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
