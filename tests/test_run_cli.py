"""`ephemera run EFFECT`: help from the registry, outputs in a tmpfs folder with a JSON summary,
refusals with the face pipeline's and the registry's clear errors."""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from appliance.cli import main
from appliance.effects.registry import effects
from appliance.media.metadata import metadata_found
from appliance.secure.buffers import REGISTRY
from tests.helpers.images import astronaut_bgr


@pytest.fixture
def ram_dir() -> Iterator[Path]:
    path = Path("/dev/shm") / f"ephemera-run-{secrets.token_hex(6)}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def photo_file(folder: Path, name: str, bgr: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert cv2.imwrite(str(path), bgr)
    return path


def test_each_effect_has_help_from_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    for key, effect in effects().items():
        with pytest.raises(SystemExit) as info:
            main(["run", key, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert effect.summary.split()[0] in out and "--allow-disk-output" in out
        for param in effect.params:
            assert f"{param.name}: {param.help}" in out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    listing = capsys.readouterr().out
    assert all(key in listing for key in effects())


@pytest.mark.needs_models
def test_run_writes_outputs_and_prints_a_summary(ram_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    photo = photo_file(ram_dir / "in", "astronaut.png", astronaut_bgr())
    out = ram_dir / "out"
    before = len(REGISTRY.live())
    assert main(["run", "faces", "--photo", str(photo), "--out", str(out),
                 "--param", "faces=1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["effect"] == "faces" and summary["params"] == {"faces": 1}
    assert summary["photos"] == [{"path": str(photo), "width": 512, "height": 512, "faces": 1}]
    [output] = summary["outputs"]
    written = Path(output["path"]).read_bytes()
    assert output["name"] == "result.jpg" and output["bytes"] == len(written)
    assert written[:3] == b"\xff\xd8\xff" and metadata_found(memoryview(written),
                                                             "image/jpeg") == []
    assert {"decode", "faces", "drawing", "encoding"} <= set(summary["stages_s"])
    assert summary["total_s"] >= sum(summary["stages_s"].values()) * 0.99
    assert len(REGISTRY.live()) == before  # every buffer of the run was released


@pytest.mark.needs_models
def test_run_refusals(ram_dir: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    photo = photo_file(ram_dir / "in", "astronaut.png", astronaut_bgr())
    blank = photo_file(ram_dir / "in", "blank.png", astronaut_bgr()[:80, :80])
    out = str(ram_dir / "out")
    cases = [
        (["--photo", str(photo), "--out", str(tmp_path / "disk")], 2, "output_on_disk"),
        (["--photo", str(photo), "--out", out, "--param", "faces=²"], 2, "bad_param"),
        (["--photo", str(photo), "--out", out, "--param", "zoom=2"], 2, "bad_param"),
        (["--photo", str(photo), "--out", out, "--param", "faces"], 2, "bad_param"),
        (["--photo", str(photo), "--photo", str(photo), "--out", out], 2,
         "wrong_photo_count"),
        (["--photo", str(ram_dir / "nothing.png"), "--out", out], 2, "no_such_file"),
        (["--photo", str(photo), "--out", str(photo)], 2, "bad_output_folder"),
        (["--photo", str(blank), "--out", out], 1, "no_face"),
        (["--photo", str(photo), "--out", out, "--param", "faces=2"], 1, "too_few_faces"),
    ]
    for args, code, error in cases:
        assert main(["run", "faces", *args]) == code, (args, capsys.readouterr())
        assert f"ephemera run: {error}:" in capsys.readouterr().err, args
    assert not (tmp_path / "disk").exists()
    assert not Path(out).exists() or list(Path(out).iterdir()) == []
    # Allowed explicitly, a disk folder is used.
    assert main(["run", "faces", "--photo", str(photo), "--out", str(tmp_path / "disk"),
                 "--allow-disk-output"]) == 0
    assert (tmp_path / "disk" / "result.jpg").stat().st_size > 0
