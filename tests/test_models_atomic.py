"""Build artefacts are replaced whole or not at all, durably, under one temporary name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.models import atomic


def test_write_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    assert atomic.write_atomic(target, b"new bytes") == target
    assert target.read_bytes() == b"new bytes"
    assert atomic.leftover_partials(tmp_path) == []


def test_an_interrupted_write_keeps_the_old_file_and_names_its_leftover(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")

    def power_cut(*_args: object) -> None:
        raise OSError("power cut before the rename")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError):
        atomic.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert atomic.leftover_partials(tmp_path) == [tmp_path / ".model.onnx.partial"]


def test_every_write_is_fsynced_file_then_directory(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    source = tmp_path / "wheel.whl"
    source.write_bytes(b"w" * 3_000_000)
    atomic.copy_atomic(source, tmp_path / "cache" / "wheel.whl")
    assert synced == [str(tmp_path / "cache" / ".wheel.whl.partial"), str(tmp_path / "cache")]
    assert (tmp_path / "cache" / "wheel.whl").read_bytes() == source.read_bytes()
