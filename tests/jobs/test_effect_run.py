"""EffectRun: what an effect receives and what ``emit`` refuses (no model needed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from appliance.jobs.effect_run import EffectJobRun, Photo, segmenter
from appliance.media.encode import encode_image
from appliance.secure.buffers import REGISTRY

OWNER = "effect-run-test"


def make_run(sink: dict[str, bytes], progress: list[tuple[str, float]]) -> EffectJobRun:
    def keep(name: str, data: memoryview, media_type: str) -> None:
        sink[name] = bytes(data)

    ticks = iter(float(t) for t in range(100))
    return EffectJobRun(OWNER, [], {}, models=None, pipeline=None,  # type: ignore[arg-type]
                        sink=keep, on_progress=lambda s, f: progress.append((s, f)),
                        clock=lambda: next(ticks))


@pytest.fixture(autouse=True)
def _release() -> Any:
    yield
    REGISTRY.release_owner(OWNER)


def test_emit_hands_a_secure_jpeg_to_the_sink_and_times_the_stages() -> None:
    sink: dict[str, bytes] = {}
    progress: list[tuple[str, float]] = []
    run = make_run(sink, progress)
    _buffer, pixels = REGISTRY.array((32, 48, 3), owner=OWNER)
    pixels[:] = 90
    run.progress("render", 0.2)
    encoded, view = encode_image(pixels, owner=OWNER)
    run.progress("encode", 1.7)
    run.emit("first.jpg", view, "image/jpeg")
    run.finish()
    assert sink["first.jpg"][:3] == b"\xff\xd8\xff"
    assert run.outputs["first.jpg"].nbytes == len(sink["first.jpg"])
    assert progress == [("render", 0.2), ("encode", 1.0)]  # clamped to 0..1
    assert set(run.stages) == {"render", "encode"} and all(v > 0 for v in run.stages.values())
    with pytest.raises(ValueError, match="twice"):
        run.emit("first.jpg", view, "image/jpeg")
    encoded.release()


def test_emit_refuses_plain_memory_bad_names_types_and_metadata() -> None:
    sink: dict[str, bytes] = {}
    run = make_run(sink, [])
    _buffer, pixels = REGISTRY.array((16, 16, 3), owner=OWNER)
    encoded, view = encode_image(pixels, owner=OWNER)
    with pytest.raises(ValueError, match="secure buffer"):
        run.emit("copy.jpg", bytes(view), "image/jpeg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="secure buffer"):
        run.emit("plain.jpg", np.frombuffer(bytes(view), np.uint8).copy(), "image/jpeg")
    other, other_view = encode_image(pixels, owner="someone-else")
    with pytest.raises(ValueError, match="secure buffer"):
        run.emit("theirs.jpg", other_view, "image/jpeg")
    other.release()
    for bad in ("../x.jpg", "a/b.jpg", "", ".hidden", "x" * 80):
        with pytest.raises(ValueError, match="plain file name"):
            run.emit(bad, view, "image/jpeg")
    with pytest.raises(ValueError, match="media type"):
        run.emit("x.gif", view, "image/gif")
    # A JPEG with a comment segment and one with EXIF, both in a secure buffer of the job.
    data = bytes(view)
    for extra, what in ((b"\xff\xfe\x00\x07hello", "comment"),
                        (b"\xff\xe1\x00\x0cExif\x00\x00MM\x00*", "APP1 Exif")):
        tagged = data[:2] + extra + data[2:]
        holder = REGISTRY.allocate(len(tagged), owner=OWNER)
        holder.view()[:] = np.frombuffer(tagged, np.uint8)
        with pytest.raises(ValueError, match=what):
            run.emit("tagged.jpg", holder.memoryview(), "image/jpeg")
    assert sink == {}
    encoded.release()


def test_photo_mask_is_computed_once_on_demand_into_the_jobs_buffers() -> None:
    calls: list[str] = []

    class Pipeline:
        def segment(self, bgr: Any, owner: str) -> Any:
            calls.append(owner)
            _buffer, mask = REGISTRY.array(bgr.shape[:2], np.float32, owner=owner)
            return mask

    photo = Photo(np.zeros((4, 6, 3), np.uint8), [],
                  segment=segmenter(Pipeline(), OWNER))  # type: ignore[arg-type]
    assert calls == []
    assert photo.mask().shape == (4, 6) and photo.mask() is photo.mask()
    assert calls == [OWNER] and len(REGISTRY.live(OWNER)) == 1
