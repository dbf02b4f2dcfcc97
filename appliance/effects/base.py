"""What an effect is: its declaration (``Effect``, ``Param``, ``OutputSpec``) and what it runs on.

Why declared: the API's validation (``validate_params``), the command line's arguments and help
(``params_from_pairs``, ``params_help``), the kiosk's menu (``describe``) and the doctor's
manifest check (``appliance.effects.checks``) all read the same declaration, so adding an
effect touches its own module (and its graphs) only. ``run`` receives an ``EffectRun``: the
job's photos (gated faces, lazily a person mask), its validated parameters, the models, and
``emit`` for each finished output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from appliance.errors import UserFacingError
from appliance.media.encode import encode_image
from appliance.models.backend import ModelProvider
from appliance.vision.face import Face
from appliance.vision.pipeline import FacePipeline

PARAM_KINDS = ("int", "float", "choice", "bool")
GATES = frozenset({"eyes_open"})  # quality gates beyond the ones every photo passes
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
ASCII_DIGITS = frozenset("0123456789")


def _bad_param(param: Param, why: str) -> UserFacingError:
    return UserFacingError("bad_param", f"Parameter '{param.name}' {why}.", status=400,
                           remedy=f"Send {param.name} as {param.describe()}.")


def _ascii_number(text: str, *, integer: bool) -> bool:
    """Plain ASCII notation only: Python's int()/float() also take '²', '٣' or full-width digits,
    which no form or command line means."""
    body = text[1:] if text[:1] in "+-" else text
    if integer:
        return bool(body) and set(body) <= ASCII_DIGITS
    mantissa, _e, exponent = body.lower().partition("e")
    whole, _dot, fraction = mantissa.partition(".")
    if not (whole or fraction) or not set(whole + fraction) <= ASCII_DIGITS:
        return False
    if _e:
        exp = exponent[1:] if exponent[:1] in "+-" else exponent
        return bool(exp) and set(exp) <= ASCII_DIGITS
    return True


@dataclass(frozen=True)
class Param:
    """One parameter of an effect: its type, default, range and a line of help.

    ``help`` is for the command line and the API; the guest's options screen shows ``label``
    (short words, default: the help) and, for a choice, ``choice_labels`` (one per choice, in
    the same order; default: the choices themselves). Both are English and go through the
    screens' catalogues.
    """

    name: str
    kind: str  # "int" | "float" | "choice" | "bool"
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    label: str = ""
    choice_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in PARAM_KINDS:
            raise ValueError(f"parameter {self.name}: kind must be one of {PARAM_KINDS}")
        if self.kind == "choice" and self.default not in self.choices:
            raise ValueError(f"parameter {self.name}: default {self.default!r} not a choice")
        if self.choice_labels and len(self.choice_labels) != len(self.choices):
            raise ValueError(f"parameter {self.name}: one label per choice")

    @property
    def guest_label(self) -> str:
        """What the options screen calls this parameter (English; translated there)."""
        return self.label or self.help

    @property
    def guest_choice_labels(self) -> tuple[str, ...]:
        """What the options screen calls each choice (English; translated there)."""
        return self.choice_labels or self.choices

    def describe(self) -> str:
        """The accepted values in words, for error messages and ``--help``."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        what = "a whole number" if self.kind == "int" else "a number"
        if self.minimum is not None and self.maximum is not None:
            return f"{what} from {self.minimum:g} to {self.maximum:g}"
        if self.minimum is not None:
            return f"{what} of at least {self.minimum:g}"
        if self.maximum is not None:
            return f"{what} of at most {self.maximum:g}"
        return what

    def parse(self, raw: object) -> Any:
        """A JSON value or a command-line string -> the value; 400 ``bad_param`` otherwise."""
        if self.kind == "bool":
            return self._parse_bool(raw)
        if self.kind == "choice":
            if not isinstance(raw, str) or raw not in self.choices:
                raise _bad_param(self, f"must be one of {', '.join(self.choices)}")
            return raw
        value = self._parse_number(raw)
        if (self.minimum is not None and value < self.minimum) or \
                (self.maximum is not None and value > self.maximum):
            raise _bad_param(self, f"is {value:g}, outside {self.describe()}")
        return value

    def _parse_bool(self, raw: object) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in TRUE_WORDS + FALSE_WORDS:
            return raw.strip().lower() in TRUE_WORDS
        raise _bad_param(self, "must be true or false")

    def _parse_number(self, raw: object) -> int | float:
        integer = self.kind == "int"
        if isinstance(raw, bool):  # a JSON true is not the number 1
            raise _bad_param(self, f"must be {self.describe()}")
        if isinstance(raw, int):
            return int(raw) if integer else float(raw)
        if isinstance(raw, float):
            if integer and not raw.is_integer():
                raise _bad_param(self, "must be a whole number")
            if not math.isfinite(raw):
                raise _bad_param(self, f"must be {self.describe()}")
            return int(raw) if integer else raw
        if isinstance(raw, str):
            text = raw.strip()
            if _ascii_number(text, integer=integer):
                number = int(text) if integer else float(text)
                if integer or math.isfinite(number):
                    return number
        raise _bad_param(self, f"must be {self.describe()}")


@dataclass(frozen=True)
class OutputSpec:
    """One file an effect makes: its name in the job and its media type."""

    name: str  # e.g. "corporate_grey.jpg", "kiss.mp4", "poster.jpg"
    media_type: str  # "image/jpeg", "video/mp4"
    title: str = ""


@dataclass
class Photo:
    """One of the guest's photos as an effect sees it.

    ``bgr`` is a view of a secure buffer of the job; ``faces`` are gated faces with their mesh,
    largest first. The person mask is computed on first use (not every effect needs it) into a
    secure buffer of the job.
    """

    bgr: npt.NDArray[np.uint8]
    faces: list[Face]
    segment: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]] | None = \
        field(default=None, repr=False)
    _mask: npt.NDArray[np.float32] | None = field(default=None, init=False, repr=False)

    def mask(self) -> npt.NDArray[np.float32]:
        """Person mask, H x W float32 in [0, 1]."""
        if self._mask is None:
            if self.segment is None:
                raise RuntimeError("this photo was made without a segmenter")
            self._mask = self.segment(self.bgr)
        return self._mask


class EffectRun(Protocol):
    """What an effect's ``run`` receives (the job layer provides it)."""

    job_id: str  # owner of every secure buffer: REGISTRY.array(..., owner=job_id)
    photos: list[Photo]  # in the order the guest gave them
    params: dict[str, Any]  # already validated by Effect.validate_params
    models: ModelProvider
    pipeline: FacePipeline

    def progress(self, stage: str, fraction: float) -> None:
        """Report a stage name and overall progress (0..1) to the guest's screen."""
        ...

    def emit(self, name: str, data: memoryview | npt.NDArray[Any], media_type: str) -> None:
        """Encrypt one finished output into the RAM store; it is ready at once. ``data`` must be
        a view of a secure buffer of the job; the caller releases that buffer afterwards."""
        ...


def emit_jpeg(job: EffectRun, name: str, bgr: npt.NDArray[Any], quality: int = 92) -> None:
    """Encode a picture of the job as a JPEG into a secure buffer of the job, emit it, and
    release that buffer: the one way an effect hands over a still."""
    encoded, view = encode_image(bgr, fmt="jpeg", owner=job.job_id, quality=quality)
    try:
        job.emit(name, view, "image/jpeg")
    finally:
        del view
        encoded.release()


@dataclass(frozen=True)
class Effect:
    """One effect, declared: everything the API, the command line and the kiosk need to know."""

    key: str  # "faces", "headshot", "baby", "kiss"
    title: str
    summary: str
    photos: tuple[int, int]  # (min, max) photos
    faces: int  # faces in total across the photos; each photo holds faces // n_photos
    gates: frozenset[str]  # extra quality gates, e.g. frozenset({"eyes_open"})
    params: tuple[Param, ...]
    outputs: tuple[OutputSpec, ...]
    models: tuple[str, ...]  # manifest model names it needs
    run: Callable[[EffectRun], None] = field(compare=False)
    # Outputs that depend on the parameters (one per headshot style): params -> outputs.
    outputs_for: Callable[[Mapping[str, Any]], tuple[OutputSpec, ...]] | None = \
        field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.gates <= GATES:
            raise ValueError(f"effect {self.key}: unknown gates {sorted(self.gates - GATES)}")
        low, high = self.photos
        if not 1 <= low <= high:
            raise ValueError(f"effect {self.key}: photos must be (min, max) with 1 <= min <= max")

    def param(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    def validate_params(self, raw: Mapping[str, object]) -> dict[str, Any]:
        """Every parameter parsed (defaults filled in); 400 ``bad_param`` on an unknown name."""
        known = {p.name for p in self.params}
        unknown = sorted(set(raw) - known)
        if unknown:
            accepted = ", ".join(sorted(known)) or "none"
            raise UserFacingError("bad_param", f"The effect '{self.key}' has no parameter "
                                  f"{', '.join(repr(u) for u in unknown)}.", status=400,
                                  remedy=f"Parameters it takes: {accepted}.")
        return {p.name: p.parse(raw[p.name]) if p.name in raw else p.default
                for p in self.params}

    def params_from_pairs(self, pairs: Sequence[str]) -> dict[str, Any]:
        """``["strength=0.7", ...]`` from a command line -> validated parameters."""
        raw: dict[str, object] = {}
        for pair in pairs:
            name, equals, value = pair.partition("=")
            if not equals or not name.strip():
                raise UserFacingError("bad_param", f"{pair!r} is not NAME=VALUE.", status=400,
                                      remedy=f"Write each parameter as NAME=VALUE, e.g. "
                                             f"{self.params[0].name}={self.params[0].default}"
                                      if self.params else "This effect takes no parameters.")
            raw[name.strip()] = value
        return self.validate_params(raw)

    def params_help(self) -> str:
        """One line per parameter: name, help, accepted values, default (for ``--help``)."""
        return "\n".join(f"{p.name}: {p.help} ({p.describe()}; default {p.default})"
                         for p in self.params) or "no parameters"

    def outputs_with(self, params: Mapping[str, Any]) -> tuple[OutputSpec, ...]:
        """The outputs this run will make (validated ``params``)."""
        return self.outputs_for(params) if self.outputs_for is not None else self.outputs

    def check_photo_count(self, count: int) -> None:
        low, high = self.photos
        if not low <= count <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            raise UserFacingError("wrong_photo_count", f"The effect '{self.key}' takes "
                                  f"{wanted} photo(s), not {count}.", status=400,
                                  remedy=f"Send {wanted} photo(s) for '{self.key}'.")

    def faces_per_photo(self, params: Mapping[str, Any], count: int) -> int:
        """Faces each photo must hold: the declared total shared over the photos. An effect
        that lets the guest choose (the self-test's ``faces`` parameter) declares it as a
        parameter of that name, which then stands for the total."""
        total = int(params["faces"]) if "faces" in params else self.faces
        return max(1, total // max(1, count))

    def describe(self) -> dict[str, Any]:
        """The declaration as JSON (``GET /api/effects``, the kiosk's menu)."""
        return {
            "key": self.key, "title": self.title, "summary": self.summary,
            "photos": list(self.photos), "faces": self.faces, "gates": sorted(self.gates),
            "params": [{"name": p.name, "kind": p.kind, "default": p.default, "help": p.help,
                        "minimum": p.minimum, "maximum": p.maximum, "choices": list(p.choices),
                        "label": p.guest_label, "choice_labels": list(p.guest_choice_labels)}
                       for p in self.params],
            "outputs": [{"name": o.name, "media_type": o.media_type, "title": o.title}
                        for o in self.outputs],
            "models": list(self.models),
        }
