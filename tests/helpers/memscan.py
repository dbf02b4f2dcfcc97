"""Scan a live process's memory for a canary: /proc/PID/maps plus /proc/PID/mem.

Used by the privacy tests to prove that released jobs leave no trace. The scanner reads every
readable, writable mapping (heap, anonymous mmaps, stacks, libraries' data) of each process,
and counts exact occurrences of each pattern. Regions the kernel will not let us read
(memfd_secret pages, guard pages) are counted separately, never silently skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

_MAPS_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")
READ_STEP = 64 << 20


@dataclass
class ScanResult:
    counts: dict[str, int]
    bytes_scanned: int = 0
    regions: int = 0
    unreadable_regions: int = 0
    unreadable_bytes: int = 0
    pids: list[int] = field(default_factory=list)

    def total(self, prefix: str = "") -> int:
        return sum(v for k, v in self.counts.items() if k.startswith(prefix))

    def by_form(self) -> dict[str, int]:
        forms: dict[str, int] = {}
        for name, count in self.counts.items():
            form = name.split("#", 1)[0]
            forms[form] = forms.get(form, 0) + count
        return forms


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (gunicorn's master and its worker)."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            found.extend(int(c) for c in children if int(c) not in found)
    return found


def _regions(pid: int) -> Iterable[tuple[int, int]]:
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            match = _MAPS_LINE.match(line.strip())
            if not match:
                continue
            start, end, perms, name = match.groups()
            if perms[0] != "r" or perms[1] != "w":
                continue  # read-only and executable mappings are files, never guest data
            if name.strip() in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
                continue
            yield int(start, 16), int(end, 16)


def scan(pids: Iterable[int], patterns: Mapping[str, bytes]) -> ScanResult:
    """Count every pattern in every readable writable mapping of ``pids``."""
    result = ScanResult(counts={name: 0 for name in patterns})
    longest = max(len(p) for p in patterns.values())
    for pid in pids:
        result.pids.append(pid)
        try:
            fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
        except PermissionError:
            raise AssertionError(
                f"cannot read /proc/{pid}/mem: the service makes itself non-dumpable, so the "
                "memory scan needs root (CAP_SYS_PTRACE); run the privacy tests as root") from None
        try:
            for start, end in _regions(pid):
                result.regions += 1
                tail = b""
                offset = start
                while offset < end:
                    size = min(READ_STEP, end - offset)
                    try:
                        data = os.pread(fd, size, offset)
                    except OSError:
                        data = b""
                    if not data:
                        result.unreadable_regions += 1
                        result.unreadable_bytes += end - offset
                        break
                    result.bytes_scanned += len(data)
                    window = tail + data
                    for name, pattern in patterns.items():
                        # Only matches that end inside the new data: none counted twice.
                        result.counts[name] += window.count(pattern) - tail.count(pattern)
                    tail = window[-(longest - 1):] if longest > 1 else b""
                    offset += len(data)
        finally:
            os.close(fd)
    return result


@dataclass(frozen=True)
class Canary:
    """A random patch of pixels and every form it can take in the service's memory."""

    patch_rgb: npt.NDArray[np.uint8]  # H x W x 3
    row_pixels: int = 32
    rows: tuple[int, ...] = (5, 21, 37, 53)

    @classmethod
    def random(cls, size: int = 64, seed: int | None = None) -> Canary:
        rng = np.random.default_rng(seed)
        return cls(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8))

    def row_slices(self) -> list[npt.NDArray[np.uint8]]:
        return [self.patch_rgb[r, 8:8 + self.row_pixels] for r in self.rows]

    def pixel_patterns(self) -> dict[str, bytes]:
        """RGB and BGR rows (HWC uint8) and float32 rows in both normalisations the models
        use ([0,1] and [-1,1]) laid out HWC (interleaved) and CHW (one channel plane per row).
        """
        patterns: dict[str, bytes] = {}
        for index, row in enumerate(self.row_slices()):
            patterns[f"rgb#{index}"] = row.tobytes()
            patterns[f"bgr#{index}"] = row[:, ::-1].tobytes()
            # Exactly the models' pre-processing (appliance/vision/tensors.py): in float32,
            # pixel * scale + offset; [-1, 1] for BlazeFace, [0, 1] for the mesh and segmenter.
            as_float = row.astype(np.float32)
            norms = {"f32_01": as_float * np.float32(1.0 / 255.0) + np.float32(0.0),
                     "f32_11": as_float * np.float32(2.0 / 255.0) + np.float32(-1.0)}
            for norm, values in norms.items():
                values = values.astype(np.float32)
                patterns[f"{norm}_hwc_rgb#{index}"] = values.tobytes()
                patterns[f"{norm}_hwc_bgr#{index}"] = values[:, ::-1].tobytes()
                for channel, label in enumerate("rgb"):
                    patterns[f"{norm}_chw_{label}#{index}"] = np.ascontiguousarray(
                        values[:, channel]).tobytes()
        return patterns


def encoded_patterns(file_bytes: bytes | bytearray, start: int, end: int,
                     count: int = 4, length: int = 64) -> dict[str, bytes]:
    """``count`` windows of ``length`` bytes taken evenly from ``file_bytes[start:end]``."""
    step = max(1, (end - start - length) // max(1, count))
    return {f"png#{i}": bytes(file_bytes[start + i * step:start + i * step + length])
            for i in range(count) if start + i * step + length <= end}
