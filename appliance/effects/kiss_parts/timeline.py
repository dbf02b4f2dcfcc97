"""When things happen in the kiss video: eased curves of time, one per motion.

Why curves rather than keyframes: every frame is a pure function of its time, so frames never
repeat (the slow camera push runs to the last frame, through the hold) and the video can be any
length from 3 to 6 seconds without re-authoring. Easing is smootherstep (zero velocity and
acceleration at both ends), which reads as a deliberate, calm movement.
"""

from __future__ import annotations

from dataclasses import dataclass

EYE_CLOSE_SECONDS = 0.4   # a deliberate close: slower than a 100 ms blink (0.3-0.5 s reads well)
EYE_CLOSE_START = 0.40    # fraction of the video when the eyes start closing
MAX_YAW_DEG = 18.0        # beyond about 20 degrees a 2-D warp would need pixels it has not got
MAX_ROLL_DEG = 7.0        # the opposite head tilts that let the noses pass
CAMERA_PUSH = 0.05        # the slow zoom towards the meeting point over the whole video


def clamp01(x: float) -> float:
    return min(1.0, max(0.0, x))


def ease(x: float) -> float:
    """Smootherstep on [0, 1] (6x^5 - 15x^4 + 10x^3)."""
    x = clamp01(x)
    return x * x * x * (x * (x * 6.0 - 15.0) + 10.0)


def span(x: float, start: float, end: float) -> float:
    """Eased progress of ``x`` through [start, end]."""
    return ease((x - start) / (end - start))


@dataclass(frozen=True)
class Pose:
    """Every motion parameter at one instant (all 0 at the start)."""

    approach: float   # 0 apart .. 1 lips meeting
    yaw: float        # 0 .. 1 of MAX_YAW_DEG, each head towards the other
    roll: float       # 0 .. 1 of MAX_ROLL_DEG
    eyes_closed: float  # 0 open .. 1 closed
    purse: float      # 0 .. 1 lips pursed
    camera: float     # 0 .. 1 of CAMERA_PUSH (linear: never stands still)


def pose_at(seconds: float, duration: float) -> Pose:
    """The pose at ``seconds`` into a video of ``duration`` seconds."""
    x = clamp01(seconds / duration)
    eyes_from = EYE_CLOSE_START * duration
    return Pose(
        approach=span(x, 0.04, 0.80),
        yaw=span(x, 0.08, 0.62),
        roll=span(x, 0.20, 0.72),
        eyes_closed=ease((seconds - eyes_from) / EYE_CLOSE_SECONDS),
        purse=span(x, 0.42, 0.74),
        camera=x,
    )


def frame_count(duration: float, fps: int) -> int:
    return max(2, round(duration * fps))
