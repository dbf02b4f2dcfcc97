"""`make gallery`: every registered effect on the sample faces, as a page in a tmpfs folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.effects.registry import effects
from appliance.secure.fs import is_ram_filesystem
from tools import gallery


@pytest.mark.needs_models
@pytest.mark.slow
def test_the_gallery_shows_every_effect_from_a_tmpfs_folder(
        ram_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GALLERY_DIR", str(ram_dir / "gallery"))
    assert gallery.main() == 0
    page = (ram_dir / "gallery" / "index.html").read_text()
    for key, effect in effects().items():
        assert f"({key})" in page and effect.title in page
    sources = re.findall(r'src="([^"]+)"', page)
    assert any(s.startswith("faces/astronaut/") for s in sources)
    assert any(s.startswith("faces/camera/") for s in sources)
    for source in sources:
        assert (ram_dir / "gallery" / source).stat().st_size > 0, source


def test_the_gallery_refuses_a_folder_on_disk(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GALLERY_DIR", str(tmp_path / "gallery"))
    if is_ram_filesystem(tmp_path):
        pytest.skip("the temporary directory is on tmpfs here")
    assert gallery.main() == 2
    assert not (tmp_path / "gallery").exists()
