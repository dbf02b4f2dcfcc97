"""Write a build artefact so that a reader sees the old file or the whole new one, never half.

Why one helper: conversion, the wheel fetch and the engine build all write files a later run
trusts (after checking their hash). A power cut on a Jetson mid-write must leave either nothing
or the complete file, so each write goes to ``.<name>.partial`` in the same directory, is
fsync-ed, renamed over the target, and the directory entry is fsync-ed too. An interrupted write
leaves only a ``.partial`` file, which the next build removes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PARTIAL_SUFFIX = ".partial"
COPY_CHUNK = 1 << 20


def partial_path(path: str | Path) -> Path:
    """The one temporary name for ``path`` while it is being written."""
    target = Path(path)
    return target.with_name(f".{target.name}{PARTIAL_SUFFIX}")


def leftover_partials(directory: str | Path) -> list[Path]:
    """Temporary files an interrupted write left in ``directory``."""
    return sorted(Path(directory).glob(f".*{PARTIAL_SUFFIX}"))


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_partial(path: str | Path, data: bytes | bytearray | memoryview) -> Path:
    """Write ``data`` to ``path``'s temporary name, durably; returns that name. The caller
    checks it (an engine is validated first) and then calls ``commit_partial``."""
    temporary = partial_path(path)
    temporary.parent.mkdir(parents=True, exist_ok=True)
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return temporary


def commit_partial(temporary: str | Path, path: str | Path) -> Path:
    """Rename the written temporary over ``path`` and make the rename durable."""
    target = Path(path)
    os.replace(temporary, target)
    _fsync_directory(target.parent)
    return target


def write_atomic(path: str | Path, data: bytes | bytearray | memoryview) -> Path:
    """Replace ``path`` with ``data`` in one step."""
    return commit_partial(write_partial(path, data), path)


def copy_atomic(source: str | Path, path: str | Path) -> Path:
    """Replace ``path`` with a copy of ``source`` in one step."""
    temporary = partial_path(path)
    temporary.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as reader, open(temporary, "wb") as writer:
        shutil.copyfileobj(reader, writer, COPY_CHUNK)
        writer.flush()
        os.fsync(writer.fileno())
    return commit_partial(temporary, path)
