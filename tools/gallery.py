"""``make gallery``: every registered effect on scikit-image's sample faces, as one HTML page.

For a person to look at (is the framing right, the edge clean, the light soft?), not a test:
nothing here passes or fails. The photos are the test dependencies' astronaut and camera;
everything is written to a tmpfs folder (default ``/dev/shm/ephemera-gallery``; set
``GALLERY_DIR`` to choose another tmpfs folder) and nothing is ever committed. Each effect runs
through ``appliance.jobs.local_run`` (the path of ``ephemera run``): effects taking one photo
run once per sample, effects taking two run on the pair.

Run: PYTHONPATH=. python tools/gallery.py   (needs the models: ``make models``)
"""

from __future__ import annotations

import html
import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from skimage import data as skdata

from appliance.config import load_config
from appliance.effects.base import Effect
from appliance.effects.registry import effects
from appliance.errors import UserFacingError
from appliance.jobs.local_run import check_output_folder, run_effect
from appliance.models.loader import ModelSet
from appliance.vision.pipeline import FacePipeline

DEFAULT_DIR = Path("/dev/shm/ephemera-gallery")
SAMPLES = ("astronaut", "camera")
STYLE = """
body { font: 14px system-ui, sans-serif; margin: 24px; background: #f4f4f2; color: #222; }
section { margin-bottom: 32px; } h2 { margin-bottom: 4px; } .summary { color: #555; }
.run { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; margin: 12px 0;
       padding: 12px; background: #fff; border-radius: 8px; }
figure { margin: 0; } figcaption { font-size: 12px; color: #555; max-width: 320px; }
img, video { max-height: 320px; max-width: 320px; display: block; border: 1px solid #ddd; }
.input img { max-height: 160px; } .error { color: #a00; } .times { font-size: 12px; color: #555; }
"""


def sample_photos(folder: Path) -> dict[str, Path]:
    """The samples as PNG files in the gallery folder (colour; camera is grey)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in SAMPLES:
        image = getattr(skdata, name)()
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, ::-1]
        paths[name] = folder / f"{name}.png"
        cv2.imwrite(str(paths[name]), np.ascontiguousarray(bgr))
    return paths


def photo_sets(effect: Effect, samples: dict[str, Path]) -> list[list[Path]]:
    """One photo per sample for single-photo effects, the pair for effects taking two."""
    defaults = effect.validate_params({})
    low, high = effect.photos
    for count in range(low, high + 1):
        if effect.faces_per_photo(defaults, count) == 1:
            if count == 1:
                return [[path] for path in samples.values()]
            return [list(samples.values())[:count]]
    return [[samples[SAMPLES[0]]]]


def figure(src: str, caption: str, media_type: str = "image/png", css: str = "") -> str:
    tag = (f'<video src="{html.escape(src)}" controls loop muted playsinline></video>'
           if media_type.startswith("video/") else f'<img src="{html.escape(src)}" alt="">')
    return f'<figure class="{css}">{tag}<figcaption>{html.escape(caption)}</figcaption></figure>'


def run_html(folder: Path, photos: list[Path], result: dict[str, Any] | str) -> str:
    parts = [figure(os.path.relpath(p, folder), p.stem, css="input") for p in photos]
    if isinstance(result, str):
        parts.append(f'<p class="error">{html.escape(result)}</p>')
    else:
        for output in result["outputs"]:
            caption = f"{output['name']} - {output['bytes'] / 1024:.0f} KiB, ready at " \
                      f"{output['seconds']:.2f} s"
            parts.append(figure(os.path.relpath(output["path"], folder), caption,
                                output["media_type"]))
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in result["stages_s"].items())
        parts.append(f'<p class="times">{html.escape(stages)}; total '
                     f'{result["total_s"]:.2f} s</p>')
    return '<div class="run">' + "".join(parts) + "</div>"


def main() -> int:
    folder = Path(os.environ.get("GALLERY_DIR", str(DEFAULT_DIR)))
    try:
        check_output_folder(folder, allow_disk=False)
    except UserFacingError as exc:
        print(f"gallery: {exc.message} {exc.remedy}", file=sys.stderr)
        return 2
    samples = sample_photos(folder / "samples")
    sections = []
    with ModelSet(load_config()) as models:
        pipeline = FacePipeline(models)
        for key, effect in effects().items():
            runs = []
            for photos in photo_sets(effect, samples):
                out = folder / key / "-".join(p.stem for p in photos)
                try:
                    result: dict[str, Any] | str = run_effect(effect, photos, {}, out, pipeline)
                except UserFacingError as exc:
                    result = f"{exc.code}: {exc.message}"
                runs.append(run_html(folder, photos, result))
                print(f"gallery: {key} on {', '.join(p.stem for p in photos)} done")
            sections.append(f"<section><h2>{html.escape(effect.title)} "
                            f"<small>({html.escape(key)})</small></h2><p class=\"summary\">"
                            f"{html.escape(effect.summary)}</p>{''.join(runs)}</section>")
    page = folder / "index.html"
    page.write_text("<!doctype html><meta charset=\"utf-8\"><title>Ephemera effects</title>"
                    f"<style>{STYLE}</style><h1>Ephemera effects</h1>{''.join(sections)}\n")
    print(f"gallery: open file://{page} (on tmpfs; gone at reboot, or remove {folder})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
