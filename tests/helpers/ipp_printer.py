"""A real IPP Everywhere printer for tests: CUPS's ``ippeveprinter`` in a network namespace.

Why a namespace: ippeveprinter insists on registering itself over DNS-SD (Avahi, over D-Bus).
Inside a namespace of its own, with a private D-Bus and an Avahi daemon bound to that
namespace's loopback, it announces nothing to the machine's network. The test talks to it from
a worker thread that joined the namespace (``setns`` is per thread), so the client under test
runs unchanged. Its output directory is on tmpfs (/dev/shm).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNET = 0x40000000
PORT = 8631


def available() -> bool:
    return all(shutil.which(tool) for tool in ("ippeveprinter", "avahi-daemon", "dbus-daemon",
                                                "ip")) and os.geteuid() == 0


@dataclass
class Printer:
    namespace: str
    spool: Path
    uri: str
    executor: ThreadPoolExecutor
    pid: int

    def run(self, fn, *args):  # type: ignore[no-untyped-def]
        """Call ``fn`` on the thread inside the namespace."""
        return self.executor.submit(fn, *args).result(timeout=60)

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.namespace, *command],
                              capture_output=True, text=True, timeout=60)

    def stop_printer(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, 15)


def _enter(namespace: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns failed")
    finally:
        os.close(fd)


# avahi-daemon keeps its pid file at a fixed path (/run/avahi-daemon/pid) and refuses to start
# while another one's is there; a private mount of that folder keeps each test's daemon apart.
SETUP = """
set -e
ip link set lo up
dbus-daemon --session --address=unix:path={root}/bus --fork --print-pid > {root}/dbus.pid
export DBUS_SYSTEM_BUS_ADDRESS=unix:path={root}/bus
printf '[server]\\nuse-ipv4=yes\\nuse-ipv6=yes\\nallow-interfaces=lo\\n[publish]\\n' \\
    > {root}/avahi.conf
unshare -m sh -c 'mount -t tmpfs avahi /run/avahi-daemon && exec avahi-daemon \\
    -f {root}/avahi.conf --no-drop-root --no-chroot --no-rlimits' > {root}/avahi.log 2>&1 &
echo $! > {root}/avahi.pid
i=0
until dbus-send --bus=unix:path={root}/bus --print-reply --dest=org.freedesktop.DBus \\
        /org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner \\
        string:org.freedesktop.Avahi 2>/dev/null | grep -q 'boolean true'; do
    i=$((i + 1)); [ $i -lt 100 ] || {{ cat {root}/avahi.log >&2; exit 1; }}; sleep 0.1
done
ippeveprinter -n localhost -p {port} -d {root}/spool -k -f image/jpeg,image/pwg-raster \\
    -s 120 -m "Ephemera test printer" booth > {root}/printer.log 2>&1 &
echo $! > {root}/printer.pid
"""


@contextlib.contextmanager
def ipp_printer() -> Iterator[Printer]:
    name = f"eph-ipp-{secrets.token_hex(4)}"
    root = Path("/dev/shm") / name
    (root / "spool").mkdir(parents=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    executor = ThreadPoolExecutor(max_workers=1, initializer=_enter, initargs=(name,))
    try:
        subprocess.run(["ip", "netns", "exec", name, "sh", "-c",
                        SETUP.format(root=root, port=PORT)], check=True, timeout=30)
        pid = int((root / "printer.pid").read_text())
        printer = Printer(name, root / "spool", f"ipp://localhost:{PORT}/ipp/print",
                          executor, pid)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if printer.exec("ipptool", "-q", printer.uri,
                            "get-printer-attributes.test").returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("ippeveprinter did not start: "
                               + (root / "printer.log").read_text()[-500:])
        yield printer
    finally:
        executor.shutdown(wait=True)
        for pidfile in ("printer.pid", "avahi.pid", "dbus.pid"):
            with contextlib.suppress(OSError, ValueError, ProcessLookupError):
                os.kill(int((root / pidfile).read_text().split()[0]), 15)
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)
        shutil.rmtree(root, ignore_errors=True)


CUPS_DIRS = {"/run/cups/spool": "spool", "/run/cups/tmp": "tmp", "/run/cups": "state"}


@dataclass
class CupsQueue:
    root: Path
    uri: str

    def stop(self) -> None:
        """SIGTERM cupsd and wait: on the way out it writes its job cache."""
        pid_file = self.root / "state" / "cupsd.pid"
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            pid = int(pid_file.read_text())
            os.kill(pid, 15)
            deadline = time.monotonic() + 15
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)


@contextlib.contextmanager
def cups_queue(printer: Printer, cupsd_conf: str, files_conf: str) -> Iterator[CupsQueue]:
    """cupsd with the configuration provisioning installs, in the printer's namespace, with a
    queue ``ephemera`` feeding it. The only changes: its /run/cups paths move under one tmpfs
    folder of this test, and ServerRoot, CacheDir and StateDir (defaults under /etc, /var) move
    there too, so the test touches nothing of the machine's own CUPS."""
    root = Path("/dev/shm") / f"{printer.namespace}-cups"
    for sub in ("etc", "cache", *CUPS_DIRS.values()):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for original, sub in CUPS_DIRS.items():
        cupsd_conf = cupsd_conf.replace(original, str(root / sub))
        files_conf = files_conf.replace(original, str(root / sub))
    files_conf += (f"ServerRoot {root / 'etc'}\nCacheDir {root / 'cache'}\n"
                   f"StateDir {root / 'state'}\n")
    (root / "etc" / "cupsd.conf").write_text(cupsd_conf)
    (root / "etc" / "cups-files.conf").write_text(files_conf)
    started = printer.exec("cupsd", "-c", str(root / "etc" / "cupsd.conf"),
                           "-s", str(root / "etc" / "cups-files.conf"))
    try:
        if started.returncode != 0:
            raise RuntimeError(f"cupsd did not start: {started.stderr}")
        deadline = time.monotonic() + 20
        while printer.exec("lpstat", "-h", "localhost:631", "-r").returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("cupsd did not answer")
            time.sleep(0.2)
        added = printer.exec("lpadmin", "-h", "localhost:631", "-p", "ephemera", "-E",
                             "-v", printer.uri)
        if added.returncode != 0:
            raise RuntimeError(f"lpadmin failed: {added.stderr}")
        yield CupsQueue(root, "ipp://localhost:631/printers/ephemera")
    finally:
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.kill(int((root / "state" / "cupsd.pid").read_text()), 15)
        time.sleep(0.5)
        shutil.rmtree(root, ignore_errors=True)
