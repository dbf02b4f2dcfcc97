"""Which filesystem a path lives on, from the kernel itself (``statfs(2)``'s ``f_type``).

Why ctypes: ``os.statvfs`` has no filesystem type, and /proc/self/mountinfo needs longest-prefix
matching and breaks inside some containers; ``statfs`` asks the kernel about the very inode.
"""

from __future__ import annotations

import ctypes
import os

TMPFS_MAGIC = 0x01021994
RAMFS_MAGIC = 0x858458F6
RAM_FILESYSTEMS = {TMPFS_MAGIC: "tmpfs", RAMFS_MAGIC: "ramfs"}
_KNOWN = {
    **RAM_FILESYSTEMS,
    0xEF53: "ext2/ext3/ext4",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    0x794C7630: "overlayfs",
    0x6969: "nfs",
    0x4D44: "vfat",
    0x2011BAB0: "exfat",
    0x5346544E: "ntfs",
    0x73717368: "squashfs",
    0x01021997: "9p",
    0x65735546: "fuse",
    0xF2F52010: "f2fs",
    0x9FA0: "proc",
    0x62656572: "sysfs",
}


class _StatFs(ctypes.Structure):
    # struct statfs on 64-bit Linux (x86-64 and aarch64 share this layout)
    _fields_ = [
        ("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long),
        ("f_blocks", ctypes.c_ulong), ("f_bfree", ctypes.c_ulong), ("f_bavail", ctypes.c_ulong),
        ("f_files", ctypes.c_ulong), ("f_ffree", ctypes.c_ulong),
        ("f_fsid", ctypes.c_int * 2), ("f_namelen", ctypes.c_long), ("f_frsize", ctypes.c_long),
        ("f_flags", ctypes.c_long), ("f_spare", ctypes.c_long * 4),
    ]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_StatFs)]
_libc.statfs.restype = ctypes.c_int


def filesystem_magic(path: str | os.PathLike[str]) -> int:
    """The kernel's magic number for the filesystem holding ``path`` (raises OSError)."""
    result = _StatFs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(result)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(path))
    return int(result.f_type) & 0xFFFFFFFF


def filesystem_type(path: str | os.PathLike[str]) -> str:
    """A readable name for the filesystem holding ``path``: "tmpfs", "ramfs", "ext2/ext3/ext4"..."""
    magic = filesystem_magic(path)
    return _KNOWN.get(magic, f"unknown (0x{magic:08x})")


def is_ram_filesystem(path: str | os.PathLike[str]) -> bool:
    return filesystem_magic(path) in RAM_FILESYSTEMS
