"""In-memory H.264: the encoders, the faststart rewrite and the encoder choice.

Every check of the video reads it back with readers other than the writer: PyAV decoding every
frame, and the tests' own box walker (tests/mp4_reader.py) for the box order and sample tables.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from appliance.media import video
from appliance.media.metadata import mp4_metadata
from appliance.media.mp4 import Mp4Error, faststart
from appliance.media.secure_io import SecureSink, wipe_transient_bytes
from appliance.media.video import (
    GStreamerH264Encoder,
    Libx264Encoder,
    VideoSpec,
    choose_encoder,
)
from appliance.secure.buffers import REGISTRY
from tests import mp4_reader

WIDTH, HEIGHT, FPS, FRAMES = 1280, 720, 24, 36


@pytest.fixture
def owner() -> Iterator[str]:
    job = f"video-{uuid.uuid4().hex}"
    yield job
    REGISTRY.release_owner(job)


def moving_frame(index: int) -> np.ndarray:
    """A frame whose content identifies its index: a bar moving across a gradient."""
    frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    frame[:] = np.linspace(40, 200, WIDTH, dtype=np.uint8)[None, :, None]
    x = 20 + index * 30
    frame[100:600, x:x + 40] = (20, 220, 240)
    return frame


def encode(encoder: video.H264Encoder, frames: int = FRAMES) -> tuple[memoryview, list]:
    for index in range(frames):
        encoder.add(moving_frame(index))
    _buffer, view = encoder.finish()
    return view, []


def check_video(data: bytes, frames: int, fps: int = FPS) -> None:
    """Everything the issue asks of the file, read by PyAV and by the box walker."""
    top = [box.kind for box in mp4_reader.walk(data)]
    assert top[0] == "ftyp"
    assert top.index("moov") < top.index("mdat"), f"moov after mdat: {top}"
    # Every chunk offset lands on a well-formed H.264 sample (the offsets were shifted right).
    sample_list = mp4_reader.samples(data)
    assert len(sample_list) == frames
    for offset, size in sample_list:
        types = mp4_reader.nal_units(data, offset, size)
        assert set(types) & {1, 5}, f"no slice NAL in sample at {offset}: {types}"
    assert 5 in mp4_reader.nal_units(data, *sample_list[0])  # starts with an IDR
    assert mp4_metadata(memoryview(data)) == []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.profile == "High"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == (WIDTH, HEIGHT)
        assert stream.average_rate == Fraction(fps)
        assert stream.duration is not None
        assert float(stream.duration * stream.time_base) == pytest.approx(frames / fps, abs=1e-3)
        decoded = [frame.to_ndarray(format="bgr24") for frame in container.decode(stream)]
    assert len(decoded) == frames
    for index in (0, frames // 2, frames - 1):  # the right frame, in order, close to the input
        error = np.abs(decoded[index].astype(int) - moving_frame(index).astype(int)).mean()
        assert error < 4, f"frame {index} differs by {error:.1f} on average"


def test_libx264_makes_a_faststart_high_profile_mp4(owner: str) -> None:
    encoder = Libx264Encoder(VideoSpec(WIDTH, HEIGHT, FPS), owner)
    view, _ = encode(encoder)
    check_video(bytes(view), FRAMES)


def test_30_fps(owner: str) -> None:
    encoder = Libx264Encoder(VideoSpec(WIDTH, HEIGHT, 30), owner)
    view, _ = encode(encoder, 30)
    check_video(bytes(view), 30, fps=30)


def test_the_video_lives_in_one_secure_buffer_of_the_job(owner: str) -> None:
    encoder = Libx264Encoder(VideoSpec(WIDTH, HEIGHT, FPS), owner)
    for index in range(12):
        encoder.add(moving_frame(index))
    assert {b.label for b in REGISTRY.live(owner)} >= {"video-mux", "video-i420"}
    buffer, view = encoder.finish()
    live = REGISTRY.live(owner)
    assert live == [buffer], "the muxer's and the frame buffers are released"
    address = np.frombuffer(view, np.uint8).ctypes.data
    assert buffer.address <= address < buffer.address + buffer.capacity
    buffer.release()
    assert REGISTRY.live(owner) == []


def test_abort_releases_everything(owner: str) -> None:
    encoder = Libx264Encoder(VideoSpec(WIDTH, HEIGHT, FPS), owner)
    encoder.add(moving_frame(0))
    encoder.abort()
    assert REGISTRY.live(owner) == []


def test_frames_of_the_wrong_shape_are_refused(owner: str) -> None:
    encoder = Libx264Encoder(VideoSpec(WIDTH, HEIGHT, FPS), owner)
    try:
        with pytest.raises(ValueError, match="720x1280x3"):
            encoder.add(np.zeros((10, 10, 3), np.uint8))
    finally:
        encoder.abort()


def test_spec_refuses_odd_sizes_and_rates() -> None:
    with pytest.raises(ValueError, match="even"):
        VideoSpec(1281, 720)
    with pytest.raises(ValueError, match="frame rate"):
        VideoSpec(1280, 720, fps=25)


def test_faststart_refuses_what_is_not_an_mp4(owner: str) -> None:
    with pytest.raises(Mp4Error):
        faststart(memoryview(b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00"), owner)
    with pytest.raises(Mp4Error):
        faststart(memoryview(b"\x00\x00\x01\x00moov"), owner)
    assert REGISTRY.live(owner) == []


def test_sink_grows_by_secure_buffers_and_wipes_the_chunks_it_was_given(owner: str) -> None:
    sink = SecureSink(owner, initial=4096, wipe_written=True)
    chunk = bytes(np.random.default_rng(1).integers(1, 255, 3000, dtype=np.uint8))
    copy = bytes(bytearray(chunk))
    sink.write(memoryview(copy))
    sink.write(chunk)
    assert bytes(sink.getbuffer()) == copy + copy
    assert sink.grown == 1 and len(REGISTRY.live(owner)) == 1
    assert chunk == bytes(3000), "the bytes object handed over was zeroed"
    sink.seek(10)
    target = bytearray(5)
    assert sink.readinto(target) == 5 and bytes(target) == copy[10:15]
    sink.release()
    assert REGISTRY.live(owner) == []


def test_small_bytes_are_never_touched() -> None:
    small = b"ab"
    wipe_transient_bytes(small)
    assert small == b"ab"


def test_a_plain_sink_leaves_the_callers_bytes_alone(owner: str) -> None:
    sink = SecureSink(owner)
    chunk = bytes(range(1, 101))
    sink.write(chunk)
    assert chunk == bytes(range(1, 101))
    sink.release()


def test_pyav_chunks_are_wiped_while_muxing(owner: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """PyAV hands the muxer's output over as throw-away bytes; the sink zeroes each one."""
    import appliance.media.secure_io as secure_io

    handed: list[bytes] = []
    original = secure_io.wipe_transient_bytes

    def keep(chunk: object) -> None:
        original(chunk)
        if isinstance(chunk, bytes) and len(chunk) >= secure_io.WIPE_MIN:
            handed.append(chunk)

    monkeypatch.setattr(secure_io, "wipe_transient_bytes", keep)
    encoder = Libx264Encoder(VideoSpec(WIDTH, HEIGHT, FPS), owner)
    encode(encoder, 12)
    assert handed and all(not any(chunk) for chunk in handed)


# -- the hardware seam --------------------------------------------------------------------

def _gstreamer_with(*elements: str) -> bool:
    if shutil.which("gst-inspect-1.0") is None:
        return False
    return all(subprocess.run(["gst-inspect-1.0", "--exists", e], check=False).returncode == 0
               for e in elements)


STAND_IN = "x264enc speed-preset=veryfast bframes=0 key-int-max=24 threads=2"


@pytest.mark.skipif(not _gstreamer_with("x264enc", "h264parse", "rawvideoparse"),
                    reason="GStreamer with x264enc, h264parse and rawvideoparse not installed "
                           "(make system-deps)")
def test_hardware_path_with_x264enc_standing_in_for_nvv4l2h264enc(owner: str) -> None:
    """The GStreamer path end to end; only the encoder element differs on a Jetson."""
    encoder = GStreamerH264Encoder(VideoSpec(WIDTH, HEIGHT, FPS), owner, element=STAND_IN,
                                   convert="videoconvert", name="x264enc (stand-in)")
    view, _ = encode(encoder)
    check_video(bytes(view), FRAMES)
    live = REGISTRY.live(owner)
    assert len(live) == 1 and live[0].label == "mp4-faststart"


def test_hardware_pipeline_names_the_jetson_elements() -> None:
    args = video.hardware_pipeline(VideoSpec(WIDTH, HEIGHT, FPS))
    text = " ".join(args)
    assert args[0] == "gst-launch-1.0"
    assert "nvvidconv ! nvv4l2h264enc profile=4" in text
    assert "fdsrc fd=0" in text and "fdsink fd=1" in text  # pipes only, never a file
    assert "location=" not in text and "filesink" not in text


def test_choice_without_encoder_nodes_is_libx264(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(video.ENCODER_ENV, raising=False)
    choice = choose_encoder(nodes=("/nonexistent/nvhost-msenc",))
    assert choice.name == "libx264" and "no hardware video encoder" in choice.reason


def test_choice_with_a_node_but_no_gstreamer_element(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    node = tmp_path / "nvhost-msenc"  # a stand-in for the Jetson's device node
    node.touch()
    monkeypatch.delenv(video.ENCODER_ENV, raising=False)
    choice = choose_encoder(nodes=(str(node),))
    assert choice.name == "libx264" and "nvv4l2h264enc" in choice.reason


def test_choice_with_node_and_element_is_the_hardware(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    node = tmp_path / "nvhost-msenc"
    node.touch()
    monkeypatch.delenv(video.ENCODER_ENV, raising=False)
    monkeypatch.setattr(video, "_gstreamer_has", lambda element: element == "nvv4l2h264enc")
    choice = choose_encoder(nodes=(str(node),))
    assert choice.name == "nvv4l2h264enc"
    opened = video.open_encoder
    assert opened is not None


def test_choice_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(video.ENCODER_ENV, "nvv4l2h264enc")
    assert choose_encoder(nodes=()).name == "nvv4l2h264enc"


def test_doctor_reports_the_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.config import load_config
    from appliance.doctor import run_checks

    monkeypatch.delenv(video.ENCODER_ENV, raising=False)
    results = dict(run_checks(load_config()))
    result = results["video encoder"]
    assert result.ok and result.detail.startswith("libx264: ")
