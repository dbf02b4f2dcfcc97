"""H.264 video made entirely in memory: frames from secure buffers in, a faststart MP4 out.

What every phone plays: H.264 High profile, yuv420p, 24 or 30 frames per second, in an MP4 whose
``moov`` index comes before the media (``appliance.media.mp4.faststart``). Two encoders, chosen
at run time (``choose_encoder``) and reported by ``ephemera doctor``:

* ``libx264`` through PyAV (every machine; the Jetson Orin Nano has no hardware encoder);
* ``nvv4l2h264enc`` through GStreamer on a Jetson that has one (Orin NX, AGX Orin). This is the
  hardware seam: ``GStreamerH264Encoder`` runs ``gst-launch-1.0`` with raw I420 frames on its
  stdin and the H.264 byte stream on its stdout (pipes, never files), and PyAV then muxes that
  stream into the MP4 without re-encoding. Off a Jetson the tests run the same class with
  GStreamer's ``x264enc`` standing in for the hardware element.

Where the guest's pixels go, and what is wiped:

* each frame is converted to I420 into a secure buffer of the job and copied into a libav frame,
  whose planes are zeroed as soon as the encoder has taken its copy;
* the encoder's own reference and look-ahead frames (x264, or the hardware driver) live in its
  private heap until ``close``; they cannot be reached from Python. Under the service's allocator
  settings (``appliance.secure.malloc_env``: MALLOC_PERTURB_, no tcache, mmap threshold) glibc
  overwrites those blocks when they are freed, and big ones are unmapped;
* the muxer writes into ``SecureSink`` (secure buffers, not ``io.BytesIO``, whose realloc-grown
  heap block would leave every intermediate size behind unwiped); PyAV hands each 32 KiB I/O
  chunk over as a fresh ``bytes`` object, which the sink zeroes after copying it;
* the finished MP4 is rewritten once into its faststart order in another secure buffer and the
  muxer's buffer is released (wiped).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from appliance.media.mp4 import faststart
from appliance.media.secure_io import SecureSink, SecureSource
from appliance.secure.buffers import REGISTRY, SecureBuffer, wipe_array

FRAME_RATES = (24, 30)
PROFILE = "high"
ENCODER_ENV = "EPHEMERA_VIDEO_ENCODER"  # "libx264" or "nvv4l2h264enc": overrides the choice
HARDWARE_ELEMENT = "nvv4l2h264enc"
# Device nodes of the Jetson's NVENC block (msenc on Orin NX / AGX Orin; Orin Nano has none).
HARDWARE_NODES = ("/dev/nvhost-msenc", "/dev/v4l2-nvenc")
GST_LAUNCH = "gst-launch-1.0"
GST_INSPECT = "gst-inspect-1.0"
# bitexact: no "encoder" tag, so no udta box at all (the service's outputs carry no metadata).
MUXER_OPTIONS = {"fflags": "+bitexact"}


@dataclass(frozen=True)
class VideoSpec:
    """The size, rate and quality of one video."""

    width: int
    height: int
    fps: int = 24
    crf: int = 20            # libx264's constant quality; 18-23 is visually clean at 720p
    preset: str = "veryfast"
    bitrate: int = 6_000_000  # the hardware encoder's target (it has no constant quality)

    def __post_init__(self) -> None:
        if self.fps not in FRAME_RATES:
            raise ValueError(f"frame rate {self.fps} not in {FRAME_RATES}")
        if self.width % 2 or self.height % 2 or min(self.width, self.height) < 16:
            raise ValueError(f"{self.width}x{self.height}: yuv420p needs even sides of 16+")


class H264Encoder(Protocol):
    """Frames in (BGR, one at a time), a faststart MP4 in a secure buffer out."""

    name: str

    def add(self, bgr: npt.NDArray[np.uint8]) -> None: ...

    def finish(self) -> tuple[SecureBuffer, memoryview]: ...

    def abort(self) -> None: ...


def _check_frame(spec: VideoSpec, bgr: npt.NDArray[Any]) -> None:
    if bgr.shape != (spec.height, spec.width, 3) or bgr.dtype != np.uint8:
        raise ValueError(f"expected a {spec.height}x{spec.width}x3 uint8 frame, "
                         f"got {bgr.shape} {bgr.dtype}")


class _I420:
    """One reusable I420 frame in a secure buffer (OpenCV's BT.601 limited-range matrix)."""

    def __init__(self, spec: VideoSpec, owner: str) -> None:
        self.buffer, self.pixels = REGISTRY.array((spec.height * 3 // 2, spec.width), np.uint8,
                                                  owner=owner, label="video-i420")
        self.width, self.height = spec.width, spec.height

    def convert(self, bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420, dst=self.pixels)
        return self.pixels

    def planes(self) -> tuple[npt.NDArray[np.uint8], ...]:
        w, h = self.width, self.height
        flat = self.pixels.reshape(-1)
        y = flat[: w * h].reshape(h, w)
        u = flat[w * h: w * h * 5 // 4].reshape(h // 2, w // 2)
        v = flat[w * h * 5 // 4:].reshape(h // 2, w // 2)
        return y, u, v

    def release(self) -> None:
        self.buffer.release()


def _x264_params() -> str:
    # Tag the colour as what OpenCV's conversion produced, so players do not guess.
    return "colorprim=bt709:transfer=bt709:colormatrix=smpte170m:fullrange=off"


class Libx264Encoder:
    """libx264 through PyAV, muxed by PyAV into secure memory, then made faststart."""

    name = "libx264"

    def __init__(self, spec: VideoSpec, owner: str, threads: int = 0) -> None:
        import av

        self.spec, self.owner = spec, owner
        self._sink = SecureSink(owner, label="video-mux", wipe_written=True)
        self._container: Any = av.open(self._sink, mode="w", format="mp4",
                                       options=MUXER_OPTIONS)
        stream = self._container.add_stream("libx264", rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, spec.fps)
        stream.thread_count = threads
        stream.options = {"profile": PROFILE, "preset": spec.preset, "crf": str(spec.crf),
                          "x264-params": _x264_params()}
        self._stream = stream
        self._i420 = _I420(spec, owner)
        self.frames = 0

    def add(self, bgr: npt.NDArray[np.uint8]) -> None:
        import av

        _check_frame(self.spec, bgr)
        y, u, v = self._i420.planes()
        self._i420.convert(bgr)
        frame = av.VideoFrame(self.spec.width, self.spec.height, "yuv420p")
        targets = []
        for plane, source in zip(frame.planes, (y, u, v), strict=True):
            target = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)  # type: ignore[call-overload]
            target[: source.shape[0], : source.shape[1]] = source
            targets.append(target)
        frame.pts = self.frames
        frame.time_base = Fraction(1, self.spec.fps)
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        finally:
            for target in targets:  # x264 copied the picture during encode(): wipe ours
                wipe_array(target)
            self._i420.pixels.fill(0)
        self.frames += 1

    def finish(self) -> tuple[SecureBuffer, memoryview]:
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            return faststart(self._sink.getbuffer(), owner=self.owner)
        finally:
            self._i420.release()
            self._sink.release()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._container.close()
        self._i420.release()
        self._sink.release()


def hardware_pipeline(spec: VideoSpec, element: str = HARDWARE_ELEMENT,
                      convert: str = "nvvidconv") -> list[str]:
    """gst-launch-1.0 arguments: raw I420 on fd 0, an H.264 High byte stream on fd 1.

    ``element`` and ``convert`` are the seam: on a Jetson ``nvv4l2h264enc`` after
    ``nvvidconv`` (which moves frames into NVMM memory); the stand-in passes ``x264enc ...``
    and ``videoconvert``. No B-frames, one IDR every second, SPS/PPS with every IDR.
    """
    caps = (f"video/x-raw,format=I420,width={spec.width},height={spec.height},"
            f"framerate={spec.fps}/1")
    encoder = element
    if element == HARDWARE_ELEMENT:
        encoder = (f"{HARDWARE_ELEMENT} profile=4 bitrate={spec.bitrate} "
                   f"iframeinterval={spec.fps} idrinterval={spec.fps} insert-sps-pps=true "
                   "num-B-Frames=0 maxperf-enable=true")
    # -q: gst-launch's own messages would otherwise share stdout with the video bytes.
    pipeline = (f"fdsrc fd=0 blocksize={spec.width * spec.height * 3 // 2} ! "
                f"rawvideoparse format=i420 width={spec.width} height={spec.height} "
                f"framerate={spec.fps}/1 ! {caps} ! {convert} ! {encoder} ! h264parse "
                "config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au,"
                "profile=high ! fdsink fd=1 sync=false")
    return [GST_LAUNCH, "-q", *pipeline.split()]


class GStreamerH264Encoder:
    """The hardware path: GStreamer encodes, PyAV muxes the byte stream in memory.

    Frames go to ``gst-launch-1.0`` through a pipe (kernel memory, never a file); a reader thread
    collects the H.264 byte stream into a secure sink; ``finish`` muxes it into an MP4 with PyAV
    (stream copy, no re-encoding) and makes it faststart.
    """

    def __init__(self, spec: VideoSpec, owner: str, element: str = HARDWARE_ELEMENT,
                 convert: str = "nvvidconv", name: str = HARDWARE_ELEMENT) -> None:
        self.name = name
        self.spec, self.owner = spec, owner
        self._i420 = _I420(spec, owner)
        self._stream = SecureSink(owner, label="video-h264")
        self._process = subprocess.Popen(
            hardware_pipeline(spec, element, convert), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, close_fds=True,
            env={**os.environ, "GST_REGISTRY_UPDATE": "no"})
        self._reader = threading.Thread(target=self._collect, name="h264-reader", daemon=True)
        self._errors: list[bytes] = []
        self._reader.start()
        self.frames = 0

    def _collect(self) -> None:
        assert self._process.stdout is not None
        chunk_buffer, chunk = REGISTRY.array((1 << 16,), np.uint8, owner=self.owner,
                                             label="video-pipe")
        try:
            view = memoryview(chunk)  # type: ignore[arg-type]
            stdout: Any = self._process.stdout
            while True:
                count = stdout.readinto(view)
                if not count:
                    break
                self._stream.write(view[:count])
        finally:
            chunk_buffer.release()

    def add(self, bgr: npt.NDArray[np.uint8]) -> None:
        _check_frame(self.spec, bgr)
        assert self._process.stdin is not None
        self._i420.convert(bgr)
        try:
            self._process.stdin.write(memoryview(self._i420.pixels).cast("B"))  # type: ignore[arg-type]
        except BrokenPipeError as exc:
            raise RuntimeError(f"GStreamer stopped: {self._stderr()}") from exc
        finally:
            self._i420.pixels.fill(0)
        self.frames += 1

    def _stderr(self) -> str:
        assert self._process.stderr is not None
        return self._process.stderr.read().decode("utf-8", "replace").strip()[-500:]

    def finish(self) -> tuple[SecureBuffer, memoryview]:
        assert self._process.stdin is not None
        try:
            self._process.stdin.close()
            self._reader.join(timeout=60)
            code = self._process.wait(timeout=60)
            if code != 0 or self._stream.size == 0:
                raise RuntimeError(f"GStreamer exited with {code}: {self._stderr()}")
            return mux_h264(self._stream.getbuffer(), self.spec, self.frames, self.owner)
        finally:
            self._cleanup()

    def abort(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(timeout=10)
        for pipe in (self._process.stdin, self._process.stdout, self._process.stderr):
            if pipe is not None:
                pipe.close()
        self._i420.release()
        self._stream.release()


def mux_h264(stream: memoryview, spec: VideoSpec, frames: int,
             owner: str) -> tuple[SecureBuffer, memoryview]:
    """An Annex B H.264 byte stream (no B-frames) -> faststart MP4, by stream copy in PyAV."""
    import av

    sink = SecureSink(owner, label="video-mux", wipe_written=True)
    source = av.open(SecureSource(stream), mode="r", format="h264")
    try:
        target = av.open(sink, mode="w", format="mp4", options=MUXER_OPTIONS)
        in_stream = source.streams.video[0]
        out_stream = target.add_stream_from_template(in_stream)
        out_stream.time_base = Fraction(1, spec.fps * 512)
        index = 0
        for packet in source.demux(in_stream):
            if packet.size == 0:
                continue
            # A raw byte stream has no timestamps: frame i is at i / fps (no B-frames).
            packet.stream = out_stream
            packet.time_base = Fraction(1, spec.fps)
            packet.pts = packet.dts = index
            packet.duration = 1
            target.mux(packet)
            index += 1
        target.close()
        if index != frames:
            raise RuntimeError(f"the encoder returned {index} frames for {frames}")
        return faststart(sink.getbuffer(), owner=owner)
    finally:
        source.close()
        sink.release()


@dataclass(frozen=True)
class EncoderChoice:
    name: str     # "libx264" or "nvv4l2h264enc"
    reason: str   # why, for `ephemera doctor`


def _gstreamer_has(element: str) -> bool:
    inspect = shutil.which(GST_INSPECT)
    if inspect is None or shutil.which(GST_LAUNCH) is None:
        return False
    done = subprocess.run([inspect, "--exists", element], capture_output=True, timeout=30,
                          check=False)
    return done.returncode == 0


def choose_encoder(nodes: tuple[str, ...] = HARDWARE_NODES) -> EncoderChoice:
    """The hardware encoder where this Jetson has one and GStreamer can reach it, else x264."""
    forced = os.environ.get(ENCODER_ENV, "").strip()
    if forced in ("libx264", HARDWARE_ELEMENT):
        return EncoderChoice(forced, f"set by {ENCODER_ENV}")
    present = [node for node in nodes if Path(node).exists()]
    if not present:
        return EncoderChoice("libx264", "no hardware video encoder on this machine "
                                        "(none on an Orin Nano or a PC)")
    if not _gstreamer_has(HARDWARE_ELEMENT):
        return EncoderChoice("libx264", f"{present[0]} exists but GStreamer has no "
                                        f"{HARDWARE_ELEMENT} (install JetPack's gstreamer "
                                        "plugins)")
    return EncoderChoice(HARDWARE_ELEMENT, f"hardware encoder at {present[0]}")


def open_encoder(spec: VideoSpec, owner: str,
                 choice: EncoderChoice | None = None) -> H264Encoder:
    """The encoder ``choose_encoder`` picks (or ``choice``), ready for frames."""
    choice = choice or choose_encoder()
    if choice.name == HARDWARE_ELEMENT:
        return GStreamerH264Encoder(spec, owner)
    return Libx264Encoder(spec, owner)


__all__ = [
    "ENCODER_ENV",
    "FRAME_RATES",
    "HARDWARE_ELEMENT",
    "EncoderChoice",
    "GStreamerH264Encoder",
    "H264Encoder",
    "Libx264Encoder",
    "VideoSpec",
    "choose_encoder",
    "hardware_pipeline",
    "mux_h264",
    "open_encoder",
]
