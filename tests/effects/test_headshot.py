"""The studio headshot on real faces (scikit-image's astronaut and camera, and variants made
here): output size and count, one face found by our own detector in every style, the framing
rule, the skin's texture kept while its tone is evened, identity kept (mesh geometry), no
metadata; the matte's edges on synthetic composites with a known alpha; styles refused clearly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.effects import headshot
from appliance.effects.graphs import style as style_graph
from appliance.effects.headshot_parts import grades, render
from appliance.effects.headshot_parts.landmarks import FACE_OVAL
from appliance.effects.headshot_parts.skin import feature_mask, skin_weight
from appliance.effects.headshot_parts.styles import BUILT_IN, StyleError, load_style, load_styles
from appliance.jobs.effect_run import EffectJobRun, Photo
from appliance.media.metadata import metadata_found
from appliance.secure.buffers import REGISTRY
from appliance.vision import quality
from appliance.vision.mesh import eye_centres
from appliance.vision.pipeline import FacePipeline
from tests.effects import headshot_support as hs
from tests.helpers.images import astronaut_bgr, camera_bgr

STYLES = ("classic_monochrome", "corporate_grey", "outdoor_bokeh", "warm_studio")


def _small_astronaut() -> np.ndarray:
    """A small source (the face ~50 pixels high): the frame is enlarged about 8 times."""
    return cv2.resize(astronaut_bgr(), (200, 200), interpolation=cv2.INTER_AREA)


def _offset_mirrored_camera() -> np.ndarray:
    """The camera man mirrored, off-centre on a wider grey canvas."""
    canvas = np.full((600, 900, 3), 128, np.uint8)
    canvas[40:552, 330:842] = camera_bgr()[:, ::-1]
    return canvas


PHOTOS = {"astronaut": astronaut_bgr, "camera": camera_bgr, "small_astronaut": _small_astronaut,
          "offset_mirrored_camera": _offset_mirrored_camera}


class Rendered:
    """One photo through the effect's run, with what the tests measure."""

    def __init__(self, source: np.ndarray, mesh: np.ndarray, outputs: dict[str, bytes],
                 order: list[str]) -> None:
        self.source, self.mesh, self.outputs, self.order = source, mesh, outputs, order

    def decoded(self, name: str) -> np.ndarray:
        image = cv2.imdecode(np.frombuffer(self.outputs[name], np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        return image


@pytest.fixture(scope="module")
def rendered(pipeline: FacePipeline, face_models: Any) -> Iterator[dict[str, Rendered]]:
    owner = f"headshot-test-{uuid.uuid4().hex}"
    results = {}
    try:
        for name, make in PHOTOS.items():
            image = make()
            faces = pipeline.analyse(image, owner, faces_needed=1)
            outputs: dict[str, bytes] = {}
            order: list[str] = []

            def sink(out: str, data: memoryview, media_type: str,
                     outputs: dict[str, bytes] = outputs, order: list[str] = order) -> None:
                assert media_type == "image/jpeg"
                outputs[out] = bytes(data)
                order.append(out)

            params = headshot.EFFECT.validate_params({})
            run = EffectJobRun(owner, [Photo(image, faces)], params, face_models, pipeline,
                               sink)
            headshot.EFFECT.run(run)
            assert faces[0].mesh is not None
            results[name] = Rendered(image, faces[0].mesh.copy(), outputs, order)
        yield results
    finally:
        REGISTRY.release_owner(owner)


def test_four_styles_at_1024_by_1280_without_metadata(rendered: dict[str, Rendered]) -> None:
    for result in rendered.values():
        assert sorted(result.outputs) == [f"{s}.jpg" for s in STYLES]
        assert [o.name for o in headshot.EFFECT.outputs_with({"style": "all"})] == result.order
        for name in result.outputs:
            assert result.decoded(name).shape == (1280, 1024, 3)
            assert metadata_found(memoryview(result.outputs[name]), "image/jpeg") == []


def test_our_detector_finds_exactly_one_face_in_every_style_framed_by_the_rule(
        rendered: dict[str, Rendered], pipeline: FacePipeline, owner: str) -> None:
    for name, result in rendered.items():
        for style in result.outputs:
            # Counted as the booth's gate counts (much smaller faces are background: the
            # camera man's ear scores 0.59 in one style and is one of those).
            faces = quality.foreground_faces(pipeline.detect(result.decoded(style), owner,
                                                             mesh=True))
            assert len(faces) == 1, (name, style, len(faces))
            assert faces[0].mesh is not None
            y = eye_centres(faces[0].mesh)[:, 1].mean()
            x = faces[0].mesh[list(FACE_OVAL), 0].mean()
            # Eye line 40 % from the top, face centred; the bound covers our own mesh's
            # disagreement between the source and the output on a three-quarter face.
            assert abs(y / 1280 - 0.40) <= 0.03, (name, style, y / 1280)
            assert abs(x / 1024 - 0.50) <= 0.03, (name, style, x / 1024)


def test_identity_is_kept_by_the_mesh_geometry(rendered: dict[str, Rendered],
                                               pipeline: FacePipeline, owner: str) -> None:
    """Procrustes distance of the output's mesh (our own model, re-run on the output) to the
    source's, in RMS face radii. Bound 0.2: two different people here (astronaut and camera
    man) are 0.37 apart; the same face comes out within 0.02-0.03 when frontal, and within
    0.18 for the camera man's three-quarter face enlarged from ~85 pixels, where our mesh
    itself moves that much between the two sizes. What the effect's own pixels do (matte,
    retouch, light, grade) is bounded separately, against the merely framed photo (0.05)."""
    meshes = {}
    for name, result in rendered.items():
        for style in result.outputs:
            out = pipeline.detect(result.decoded(style), owner, mesh=True)[0].mesh
            assert out is not None
            assert hs.geometry_distance(out, result.mesh) <= 0.2, (name, style)
            meshes[name] = out
    assert hs.geometry_distance(meshes["astronaut"], meshes["camera"]) > 0.3


def test_effect_pixels_barely_move_the_mesh(pipeline: FacePipeline, face_models: Any,
                                            owner: str) -> None:
    image = camera_bgr()
    face = pipeline.analyse(image, owner, faces_needed=1)[0]
    assert face.mesh is not None
    styles = list(headshot.styles().values())
    outputs: list[np.ndarray] = []
    prepared = render.render(image, face.mesh, face_models, owner, styles,
                             lambda s, d: outputs.append(cv2.imdecode(
                                 np.frombuffer(bytes(d), np.uint8), cv2.IMREAD_COLOR)))
    framed = pipeline.detect(prepared.image, owner, mesh=True)[0].mesh
    for output in outputs:
        mesh = pipeline.detect(output, owner, mesh=True)[0].mesh
        assert framed is not None and mesh is not None
        assert hs.geometry_distance(mesh, framed) <= 0.05


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_retouch_evens_skin_but_keeps_texture_and_sharp_features(
        name: str, pipeline: FacePipeline, face_models: Any, owner: str) -> None:
    image = PHOTOS[name]()
    face = pipeline.analyse(image, owner, faces_needed=1)[0]
    assert face.mesh is not None
    plain = render.prepare(image, face.mesh, face_models, owner, retouch=0.0, relight=1.0)
    done = render.prepare(image, face.mesh, face_models, owner, retouch=0.7, relight=1.0)
    x0, y0 = render.face_square(done.points, 1280, 1024)
    local = done.points.copy()
    local[:, 0] -= x0
    local[:, 1] -= y0
    square = (slice(y0, y0 + 512), slice(x0, x0 + 512))
    skin = skin_weight(local, 512, 1.0) > 0.9
    assert skin.sum() > 20_000
    before, after = plain.foreground[square], done.foreground[square]
    ratio = hs.high_energy(after, skin) / hs.high_energy(before, skin)
    assert 0.7 <= ratio <= 1.3, ratio  # texture kept (a sigma-3 blur keeps ~0.03)
    assert hs.blotch_energy(after, skin) < 0.95 * hs.blotch_energy(before, skin)  # evened
    features = feature_mask(local, 512, 0) > 0
    assert np.array_equal(after[features], before[features])  # eyes, brows, lips untouched


def test_matte_edges_on_synthetic_composites(face_models: Any) -> None:
    """Known foreground over a green background through a known alpha with hair-like strands;
    the segmentation model's 256 x 256 soft mask is simulated from the true alpha. Measures
    in the edge band (true alpha strictly between 0 and 1, grown by 4 pixels):

    * alpha MAE (SAD / band pixels): the colour-guided filter must beat plain bilinear
      upsampling of the low-resolution mask by 40 % and stay under 0.12 (measured: 0.10
      against 0.21);
    * halo: over a new backdrop, the composite made with the estimated foreground must be
      closer to the true composite than one made with the photo's own colours (which carry
      the old green into the edge), by 25 % (measured: 30-35 % closer, mean absolute error
      in 0..255 levels over the band).
    """
    backend = face_models.get("fx_matte_portrait")
    for seed in (1, 2):
        image, alpha, fg, _bg = hs.synthetic_composite(1280, 1024, seed)
        low = cv2.resize(cv2.GaussianBlur(alpha, (0, 0), 6.0), (256, 256),
                         interpolation=cv2.INTER_AREA).astype(np.float32)
        out = backend.run({"image": image, "mask": low})
        got_alpha = out["alpha"].astype(np.float64)
        got_fg = out["foreground"].astype(np.float64)
        band = cv2.dilate(((alpha > 0.01) & (alpha < 0.99)).astype(np.uint8),
                          np.ones((9, 9), np.uint8)) > 0
        plain = cv2.resize(low, (1024, 1280), interpolation=cv2.INTER_LINEAR)
        mae = np.abs(got_alpha - alpha)[band].mean()
        mae_plain = np.abs(plain - alpha)[band].mean()
        assert mae < 0.12 and mae < 0.6 * mae_plain, (mae, mae_plain)
        backdrop = np.zeros_like(fg)
        backdrop[:] = (200, 120, 180)
        a3 = got_alpha[..., None]
        truth = alpha[..., None] * fg + (1 - alpha[..., None]) * backdrop
        estimated = a3 * got_fg + (1 - a3) * backdrop
        naive = a3 * image.astype(np.float64) + (1 - a3) * backdrop
        error = np.abs(estimated - truth)[band].mean()
        error_naive = np.abs(naive - truth)[band].mean()
        assert error < 0.75 * error_naive, (error, error_naive)


def test_shipped_grades_are_the_formulas() -> None:
    for key in grades.GRADES:
        assert (BUILT_IN / f"{key}.cube").read_text() == grades.cube_text(key)


def test_key_light_brightens_the_key_side(face_models: Any) -> None:
    """On a sphere of normals, every shipped light set-up makes the side facing its key
    brighter than the side facing its fill, and keeps the camera-facing point's brightness."""
    h, w = 1280, 1024
    yy, xx = np.mgrid[0:h // 4, 0:w // 4].astype(np.float32)
    nx, ny = (xx - w / 8) / (w / 8), (yy - h / 8) / (w / 8)
    nz = -np.sqrt(np.clip(1 - nx ** 2 - ny ** 2, 0, 1))
    normals = np.stack([nx, ny, nz]) / np.maximum(np.sqrt(nx ** 2 + ny ** 2 + nz ** 2), 1e-6)
    shading = np.concatenate([normals, np.ones((1, h // 4, w // 4), np.float32)]).astype(
        np.float32)
    grey = np.full((h, w, 3), 100, np.uint8)
    identity = grades.lattice(lambda rgb: rgb, 17)
    from appliance.effects import cube
    table = cube.dense_table(identity, 128)
    backend = face_models.get("fx_style_portrait")
    for style in headshot.styles().values():
        light = style.light.vector()
        out = backend.run({"foreground": grey, "alpha": np.ones((h, w), np.float32),
                           "backdrop": style_graph.backdrop_steps(grey), "shading": shading,
                           "light": light,
                           "lut": table})["styled"].astype(np.float64).mean(axis=2)

        def at(direction: np.ndarray, image: np.ndarray = out) -> float:
            x = int(w / 2 + direction[0] * w / 2 * 0.9)
            y = int(h / 2 + direction[1] * w / 2 * 0.9)
            return float(image[y, x])

        assert at(light[0:3]) > 1.3 * at(light[3:6]), style.key
        assert abs(out[h // 2, w // 2] - 100) <= 3


def _write_style(directory: Path, body: str, lut: str | None = None) -> Path:
    (directory / "mine.cube").write_text(lut if lut is not None else grades.cube_text(
        "warm_studio"))
    path = directory / "mine.toml"
    path.write_text(body)
    return path


OPERATOR_STYLE = """title = "Garden"
lut = "mine.cube"
[backdrop]
kind = "image"
image = "garden.png"
[light]
key_azimuth = -30
key_elevation = 30
fill_azimuth = 40
fill_elevation = 0
key_fill_ratio = 3
strength = 0.5
"""


def test_operator_style_with_a_cube_and_a_backdrop_image(tmp_path: Path, face_models: Any,
                                                         pipeline: FacePipeline,
                                                         owner: str) -> None:
    garden = np.zeros((700, 560, 3), np.uint8)
    garden[:] = (40, 160, 70)
    cv2.imwrite(str(tmp_path / "garden.png"), garden)
    _write_style(tmp_path, OPERATOR_STYLE)
    found = load_styles((BUILT_IN, tmp_path))
    assert list(found)[-1] == "mine" and len(found) == 5
    image = astronaut_bgr()
    face = pipeline.analyse(image, owner, faces_needed=1)[0]
    assert face.mesh is not None
    got: list[bytes] = []
    render.render(image, face.mesh, face_models, owner, [found["mine"]],
                  lambda s, d: got.append(bytes(d)))
    out = cv2.imdecode(np.frombuffer(got[0], np.uint8), cv2.IMREAD_COLOR)
    corner = out[:40, :40].reshape(-1, 3).mean(axis=0)
    assert corner[1] > corner[0] + 60 and corner[1] > corner[2] + 60  # the garden's green


@pytest.mark.parametrize("body, lut, words", [
    (OPERATOR_STYLE, "LUT_3D_SIZE 2\n0 0 0\n", "colour grade is not usable.*needs 8 rows"),
    (OPERATOR_STYLE.replace("garden.png", "missing.png"), None, "cannot be read"),
    (OPERATOR_STYLE.replace("garden.png", "notes.png"), None, "not a JPEG or PNG"),
    (OPERATOR_STYLE.replace("strength = 0.5", "strength = 5"), None,
     "'strength' must be a number from 0 to 1"),
    (OPERATOR_STYLE.replace('kind = "image"', 'kind = "video"'), None, "backdrop kind"),
    (OPERATOR_STYLE.replace('lut = "mine.cube"', 'lut = "../x.cube"'), None,
     "must name a .cube file"),
    ("title = \n", None, "not valid TOML"),
])
def test_bad_style_files_are_refused_with_the_file_and_the_fix(
        tmp_path: Path, body: str, lut: str | None, words: str) -> None:
    cv2.imwrite(str(tmp_path / "garden.png"), np.zeros((300, 300, 3), np.uint8))
    (tmp_path / "notes.png").write_text("not an image")
    path = _write_style(tmp_path, body, lut)
    with pytest.raises(StyleError, match=words) as caught:
        load_style(path)
    assert str(path) in str(caught.value)
    with pytest.raises(StyleError):
        load_styles((BUILT_IN, tmp_path))


def test_an_operator_style_cannot_replace_a_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "corporate_grey.toml").write_text(
        (BUILT_IN / "corporate_grey.toml").read_text())
    (tmp_path / "corporate_grey.cube").write_text(grades.cube_text("corporate_grey"))
    with pytest.raises(StyleError, match="already exists"):
        load_styles((BUILT_IN, tmp_path))


def test_operator_styles_folder_is_checked_when_the_effect_loads(tmp_path: Path) -> None:
    import subprocess
    import sys

    _write_style(tmp_path, OPERATOR_STYLE.replace('kind = "image"', 'kind = "video"'))
    env = {"EPHEMERA_EFFECTS_HEADSHOT_STYLES_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    code = "from appliance.effects.registry import effects; print(sorted(effects()))"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode != 0
    assert f"{tmp_path / 'mine.toml'} [backdrop]: backdrop kind must be" in bad.stderr
    _write_style(tmp_path, OPERATOR_STYLE.replace('kind = "image"\nimage = "garden.png"',
                                                  'kind = "gradient"\ncentre = [9, 9, 9]\n'
                                                  'edge = [0, 0, 0]'))
    code = "from appliance.effects.headshot import EFFECT; print([o.name for o in EFFECT.outputs])"
    good = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert good.returncode == 0, good.stderr
    assert "mine.jpg" in good.stdout
