"""The studio headshot: one photo in, one portrait per style out (4:5, 1024 x 1280).

Framed from the face mesh (eye line 40 % from the top, face centred and levelled), the
background replaced through a guided-filter matte with the old background's colour removed from
the edge, a soft key light from the mesh's normals, a retouch that evens skin but keeps its
texture, and each style's backdrop, light and colour grade (``headshot_parts/styles``). The
first style is emitted as soon as it is ready; the others follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from appliance.config import load_config
from appliance.effects.base import Effect, EffectRun, OutputSpec, Param
from appliance.effects.headshot_parts import render as renderer
from appliance.effects.headshot_parts.styles import BUILT_IN, Style, load_styles

_STYLES: dict[str, Style] | None = None


def styles() -> dict[str, Style]:
    """The shipped styles and the operator's (``effects.headshot_styles_dir``), loaded and
    checked once per process: a bad style file stops the start with its file and the fix."""
    global _STYLES
    if _STYLES is None:
        extra = load_config().effects.headshot_styles_dir
        _STYLES = load_styles((BUILT_IN, Path(extra)) if extra else (BUILT_IN,))
    return _STYLES


def chosen(params: Mapping[str, Any]) -> list[Style]:
    found = styles()
    wanted = params.get("style", "all")
    return list(found.values()) if wanted == "all" else [found[wanted]]


def outputs_for(params: Mapping[str, Any]) -> tuple[OutputSpec, ...]:
    return tuple(OutputSpec(s.output_name, "image/jpeg", s.title) for s in chosen(params))


def run(job: EffectRun) -> None:
    photo = job.photos[0]
    face = photo.faces[0]
    if face.mesh is None:
        raise ValueError("the headshot needs the face's mesh")

    def emit(style: Style, data: memoryview) -> None:
        job.emit(style.output_name, data, "image/jpeg")

    renderer.render(photo.bgr, face.mesh, job.models, job.job_id, chosen(job.params), emit,
                    retouch=float(job.params["retouch"]), relight=float(job.params["relight"]),
                    progress=job.progress)


EFFECT = Effect(
    key="headshot",
    title="Studio headshot",
    summary="A professional 4:5 portrait in several studio styles: framed, relit, retouched, "
            "on a new backdrop.",
    photos=(1, 1),
    faces=1,
    gates=frozenset(),
    params=(
        Param("style", "choice", "all", "one style, or all of them",
              choices=("all", *sorted(styles())), label="Style",
              choice_labels=("All styles", *(styles()[key].title for key in sorted(styles())))),
        Param("retouch", "float", 0.7, "skin retouch strength (texture is kept)", minimum=0.0,
              maximum=1.0, label="Skin retouch"),
        Param("relight", "float", 1.0, "how much of each style's studio light is applied",
              minimum=0.0, maximum=1.0, label="Studio light"),
    ),
    outputs=tuple(OutputSpec(s.output_name, "image/jpeg", s.title) for s in styles().values()),
    models=("face_detection_short", "face_detection_full", "face_landmark", *renderer.MODELS),
    run=run,
    outputs_for=outputs_for,
)
