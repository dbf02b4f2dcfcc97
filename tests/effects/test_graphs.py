"""Every generated pixel graph against its NumPy/OpenCV reference, on the same inputs, run
through ONNX Runtime exactly as the booth runs it; plus determinism and the manifest pins."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from appliance.effects import cube
from appliance.effects.graphs import Graph, generate, matte, retouch, serialize, style, warp
from appliance.effects.graphs.ops import box, fast_guided_filter
from appliance.models.manifest import GeneratedSource, load_manifest
from appliance.models.onnxruntime_backend import session_options
from tests.effects import graph_reference as ref

RNG = np.random.default_rng(20261126)


def _session(model_bytes: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(model_bytes, sess_options=session_options(2),
                                providers=["CPUExecutionProvider"])


def _photo_like(height: int, width: int) -> np.ndarray:
    """Smooth colour regions with edges and fine noise: what the filters meet in photos."""
    tiles = RNG.integers(0, 255, (12, 10, 3)).astype(np.uint8)
    base = cv2.resize(tiles, (width, height), interpolation=cv2.INTER_NEAREST).astype(np.int16)
    noise = RNG.integers(-12, 13, (height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def test_generated_graphs_are_byte_identical_and_match_their_pins() -> None:
    manifest = load_manifest()
    generated = [e for e in manifest.models.values() if isinstance(e.source, GeneratedSource)]
    assert {e.name for e in generated} >= {"fx_frame_portrait", "fx_warp_portrait",
                                           "fx_matte_portrait",
                                           "fx_retouch_face", "fx_style_portrait"}
    for entry in generated:
        assert isinstance(entry.source, GeneratedSource)
        first, second = generate(entry.source.generator), generate(entry.source.generator)
        assert first == second
        assert hashlib.sha256(first).hexdigest() == entry.onnx_sha256, entry.name


def test_box_filter_matches_opencv_at_every_border() -> None:
    g = Graph("box_test")
    x = g.input("x", "float32", [1, 2, 37, 53])
    g.output(box(g, x, 6, 37, 53), "y", "float32", [1, 2, 37, 53])
    data = RNG.random((1, 2, 37, 53), dtype=np.float32)
    (got,) = _session(serialize(g.model())).run(None, {"x": data})
    want = np.stack([ref.box(data[0, c], 6) for c in range(2)])[None]
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_fast_guided_filter_matches_reference() -> None:
    g = Graph("gf_test")
    guide = g.input("guide", "float32", [1, 1, 64, 48])
    low = g.input("low", "float32", [1, 1, 16, 12])
    g.output(fast_guided_filter(g, guide, low, 4, 2, 1e-3, 64, 48), "q", "float32",
             [1, 1, 64, 48])
    guide_v = RNG.random((1, 1, 64, 48), dtype=np.float32)
    low_v = RNG.random((1, 1, 16, 12), dtype=np.float32)
    (got,) = _session(serialize(g.model())).run(None, {"guide": guide_v, "low": low_v})
    a, b = ref.guided(ref.block_mean(guide_v[0, 0], 4), low_v[0, 0], 2, 1e-3)
    want = ref.resize(a, 64, 48) * guide_v[0, 0] + ref.resize(b, 64, 48)
    np.testing.assert_allclose(got[0, 0], want, atol=1e-4)


def test_warp_matches_opencv_cubic_warp() -> None:
    source = _photo_like(300, 260)
    out_to_src = np.array([[0.21, -0.03, 40.0], [0.03, 0.21, 25.0]])  # ~5x enlargement, rotated
    session = _session(serialize(warp.warp_affine(256, 200, "warp_test")))
    (got,) = session.run(None, {"image": source,
                                "matrix": warp.normalised_matrix(out_to_src, 260, 300)})
    want = cv2.warpAffine(source, out_to_src, (200, 256),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert got.shape == (256, 200, 3) and got.dtype == np.uint8
    assert diff.max() <= 2 and diff.mean() < 0.3


@pytest.mark.parametrize("scale", [0.21, 0.7])  # ~5x and ~1.4x enlargement
def test_crop_resize_matches_opencv_cubic(scale: float) -> None:
    source = _photo_like(250, 195)  # the graph only enlarges: the caller area-shrinks first
    x0, y0 = 40.3, 25.6
    session = _session(serialize(warp.crop_resize(256, 200, "frame_test")))
    roi = warp.crop_box_roi(x0, y0, x0 + scale * 199, y0 + scale * 255, 195, 250, 200, 256)
    (got,) = session.run(None, {"image": source, "roi": roi})
    want = np.clip(ref.crop_resize(source, x0, y0, scale, 256, 200), 0, 255)
    diff = np.abs(got - want)
    assert got.shape == (256, 200, 3) and got.dtype == np.uint8
    # ONNX Runtime's uint8 path resamples one axis, rounds and clips to 0..255, then the other:
    # where the cubic overshoots at a hard edge the clipped intermediate differs (a few pixels).
    assert np.percentile(diff, 99) <= 1.0 and np.percentile(diff, 99.9) <= 2.5
    assert diff.mean() < 0.35 and diff.max() <= 20
    # OpenCV's cubic warp agrees too, up to its 1/32-pixel coordinate tables on sharp edges.
    cv = cv2.warpAffine(source, np.array([[scale, 0, x0], [0, scale, y0]]), (200, 256),
                        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                        borderMode=cv2.BORDER_REPLICATE)
    assert np.abs(got.astype(int) - cv.astype(int)).mean() < 0.5


def test_matte_graph_matches_reference() -> None:
    h, w = 160, 128
    image = _photo_like(h, w)
    mask = cv2.GaussianBlur((RNG.random((8, 8)) > 0.5).astype(np.float32), (0, 0), 0.6)
    mask = cv2.resize(mask, (32, 32), interpolation=cv2.INTER_LINEAR)
    session = _session(serialize(matte.matte(h, w, "matte_test", mask_side=32)))
    alpha, foreground = session.run(None, {"image": image, "mask": mask})
    want_alpha, want_fg = ref.matte(image, mask, matte.FACTOR, matte.RADIUS, matte.EPS,
                                    matte.FG_RADIUS)
    np.testing.assert_allclose(alpha, want_alpha, atol=1e-4)
    assert np.abs(foreground.astype(np.float32) - want_fg).max() <= 1.0


def test_retouch_graph_matches_reference() -> None:
    image = _photo_like(128, 96)
    skin = RNG.random((128, 96), dtype=np.float32)
    (got,) = _session(serialize(retouch.retouch(128, 96, "retouch_test"))).run(
        None, {"image": image, "skin": skin})
    want = ref.retouch(image, skin, retouch.TONE_RADIUS, retouch.FACTOR, retouch.RADIUS,
                       retouch.EPS)
    assert np.abs(got.astype(np.float32) - want).max() <= 1.0


def test_style_graph_matches_reference_with_a_real_cube_lut() -> None:
    h, w, levels = 64, 48, 16
    lut = cube.parse_cube(cube.format_cube(_warm_lut(9), "test"), "warm.cube")
    table = cube.dense_table(lut, levels)
    feeds = {
        "foreground": _photo_like(h, w), "alpha": RNG.random((h, w), dtype=np.float32),
        "backdrop": _photo_like(h, w),
        "shading": np.concatenate([_unit_normals(h // 4, w // 4),
                                   RNG.random((1, h // 4, w // 4), dtype=np.float32)]),
        "light": np.array([-0.5, -0.5, -0.7, 0.6, 0.0, -0.8, 0.9, 0.3], np.float32),
        "lut": table}
    backdrop = feeds["backdrop"]
    feeds["backdrop"] = style.backdrop_steps(backdrop, levels)
    (got,) = _session(serialize(style.style(h, w, "style_test", levels))).run(None, feeds)
    feeds["backdrop"] = backdrop
    want = ref.style(feeds["foreground"], feeds["alpha"], feeds["backdrop"], feeds["shading"],
                     feeds["light"], table, levels)
    diff = np.abs(got.astype(np.float32) - want)
    # A value on a rounding boundary may land on the neighbouring table row (float order of
    # operations): allow one step of the table for a few pixels.
    assert np.mean(diff > 1) < 0.01 and diff.max() <= 255 / (levels - 1) + 1


def test_dense_table_agrees_with_trilinear_lut() -> None:
    lut = cube.parse_cube(cube.format_cube(_warm_lut(17), "t"), "t.cube")
    table = cube.dense_table(lut, 128)
    rgb = RNG.random((5000, 3)).astype(np.float32)
    steps = np.floor(rgb * 127 + 0.5).astype(int)
    got = table[steps[:, 2] * 128 * 128 + steps[:, 1] * 128 + steps[:, 0]][:, ::-1]
    want = cube.apply_reference(lut, rgb) * 255
    assert np.abs(got - want).max() <= 3.0  # rounding to 128 levels: 2/255 of input


def _warm_lut(size: int) -> np.ndarray:
    axis = np.linspace(0, 1, size, dtype=np.float32)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r ** 0.9, g, b ** 1.1 * 0.95], axis=-1)


def _unit_normals(h: int, w: int) -> np.ndarray:
    n = RNG.normal(size=(3, h, w)).astype(np.float32)
    n[2] = -np.abs(n[2]) - 0.5
    return (n / np.linalg.norm(n, axis=0)).astype(np.float32)


@pytest.mark.parametrize("text, words", [
    ("LUT_3D_SIZE 2\n0 0 0\n1 0 0\n", "needs 8 rows"),
    ("LUT_1D_SIZE 4\n", "1D LUT"),
    ("0 0 0\n", "no LUT_3D_SIZE"),
    ("LUT_3D_SIZE 2\n" + "0 0 x\n" * 8, "not three numbers"),
    ("LUT_3D_SIZE 99\n", "outside"),
    ("LUT_3D_SIZE 2\n" + "0 0 nan\n" * 8, "finite"),
])
def test_bad_cube_files_are_refused_with_the_line(text: str, words: str) -> None:
    with pytest.raises(cube.CubeError, match=words):
        cube.parse_cube(text, "bad.cube")
