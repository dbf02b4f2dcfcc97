"""`ephemera doctor` reports the privacy checks; `ephemera purge` wipes the store."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from appliance.audit import recent
from appliance.cli import main
from appliance.config import load_config
from appliance.doctor import run_checks
from appliance.secure.buffers import REGISTRY
from appliance.secure.crypto import JobKey
from appliance.secure.store import RamStore

ROOT = Path(__file__).resolve().parent.parent
PRIVACY_CHECKS = {"swap", "core_dumps", "store_tmpfs", "malloc_env", "memfd_secret", "memlock",
                  "opencv_temp", "onnxruntime_arena", "init_on_free"}


@pytest.fixture
def store_dir(monkeypatch: pytest.MonkeyPatch, ram_dir: Path) -> Path:
    monkeypatch.setenv("EPHEMERA_STORE_PATH", str(ram_dir))
    monkeypatch.delenv("EPHEMERA_CONFIG", raising=False)
    return ram_dir


def test_doctor_runs_every_privacy_check(store_dir: Path) -> None:
    results = dict(run_checks(load_config()))
    assert set(results) >= PRIVACY_CHECKS
    assert results["store_tmpfs"].ok and "tmpfs" in results["store_tmpfs"].detail
    assert results["opencv_temp"].ok and results["onnxruntime_arena"].ok


def test_doctor_fails_a_store_on_disk(store_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EPHEMERA_STORE_PATH", str(ROOT / "not-a-ram-store"))
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  store_tmpfs" in out and "not tmpfs or ramfs" in out and "-> set store.path" in out


def test_init_on_free_is_read_from_the_kernel_command_line(tmp_path: Path) -> None:
    from appliance.secure.checks import init_on_free_enabled

    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=/dev/mmcblk0p1 rw init_on_free=1 quiet\n")
    assert init_on_free_enabled(str(cmdline))
    cmdline.write_text("root=/dev/mmcblk0p1 rw init_on_free=0 quiet\n")
    assert not init_on_free_enabled(str(cmdline))
    assert not init_on_free_enabled(str(tmp_path / "missing"))


def test_malloc_env_is_a_warning_in_a_plain_shell(store_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONMALLOC", raising=False)
    result = dict(run_checks(load_config()))["malloc_env"]
    assert not result.ok and result.warning and "PYTHONMALLOC" in result.detail


def test_purge_overwrites_and_deletes_the_store(store_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    store = RamStore.from_config(load_config())
    owner = f"job-{uuid.uuid4().hex}"
    key = JobKey.generate(owner)
    data = REGISTRY.allocate(1000, owner=owner)
    store.put(owner, "a", data.memoryview(), key)
    store.put(owner, "b", data.memoryview(), key)
    (store_dir / "stray-from-a-crash").write_bytes(b"x" * 10)
    assert main(["purge"]) == 0
    assert "3 file(s) overwritten and deleted" in capsys.readouterr().out
    assert list(store_dir.iterdir()) == []
    assert recent(1)[0]["event"] == "store_purged" and recent(1)[0]["files"] == 3
    REGISTRY.release_owner(owner)


def test_purge_refuses_a_store_on_disk(store_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EPHEMERA_STORE_PATH", str(ROOT / "not-a-ram-store"))
    assert main(["purge"]) == 1
    assert "persistent storage" in capsys.readouterr().out
    assert not (ROOT / "not-a-ram-store").exists()
