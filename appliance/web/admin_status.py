"""What the operator's page shows: counts and machine facts, never a guest's content.

Why only these: the admin page is reachable over the LAN (behind the PIN), so it shows what
the operator needs to keep the booth running (models and their hashes, store use, queue,
temperatures, load, uptime) and nothing that identifies a guest: no ids, no pictures, no
parameters, only counts and events.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from appliance.web.admin_hardware import hardware

THERMAL_ROOT = Path("/sys/class/thermal")
STARTED = time.monotonic()


def thermal_zones(root: Path = THERMAL_ROOT) -> list[dict[str, Any]]:
    """Every readable thermal zone (Jetson: CPU-therm, GPU-therm, ...) in degrees Celsius."""
    zones = []
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip()
            millidegrees = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        zones.append({"zone": zone.name, "type": kind, "celsius": millidegrees / 1000})
    return zones


def gpu_load(root: Path = Path("/sys/devices")) -> float | None:
    """The Jetson GPU's load in percent (tegrastats reads the same file), None elsewhere."""
    for path in sorted(root.glob("platform/*gpu*/load")) + sorted(root.glob("gpu.0/load")):
        try:
            return int(path.read_text().strip()) / 10
        except (OSError, ValueError):
            continue
    return None


def model_rows(models: Any) -> list[dict[str, Any]]:
    """Each model of the manifest: its pinned hash, whether built, the backend it runs on."""
    manifest = models.manifest
    open_kinds = models.kinds()
    rows = []
    for name, entry in sorted(manifest.models.items()):
        built = entry.onnx_path(models.cfg.models.engines_dir).is_file()
        rows.append({"name": name, "role": entry.role, "onnx_sha256": entry.onnx_sha256,
                     "built": built, "backend": open_kinds.get(name, "not open yet")})
    return rows


def status(app_extensions: dict[str, Any], retention_cap: int) -> dict[str, Any]:
    manager = app_extensions["ephemera.jobs"]
    store = app_extensions["ephemera.store"]
    stats = manager.stats()
    usage = store.usage()
    load1, load5, load15 = os.getloadavg()
    return {
        "backend": manager.cfg.models.backend,
        "models": model_rows(app_extensions["ephemera.models"]),
        "store": {"bytes": usage["bytes"], "quota_bytes": usage["quota_bytes"],
                  "items": usage["jobs"], "max_items": usage["max_jobs"]},
        "queue": {"depth": stats["queue_depth"], "states": stats["states"],
                  "active": stats["states"].get("running", 0),
                  "waiting": stats["states"].get("queued", 0),
                  "photos": stats.get("photos", 0), "sessions": stats["sessions"]},
        "retention": {"default_minutes": manager.default_retention_minutes,
                      "hard_cap_minutes": retention_cap},
        "machine": {"load": [load1, load5, load15], "cpus": os.cpu_count(),
                    "gpu_load_percent": gpu_load(), "thermal": thermal_zones()},
        "uptime_s": round(time.monotonic() - STARTED),
        **hardware(app_extensions),
    }


def _feeds(entry: Any) -> dict[str, np.ndarray]:
    """Synthetic inputs of the model's declared shapes: a dynamic dimension at its profile's
    typical ("opt") size, pixels mid-grey, a 1-D float vector (a crop box: starts, then ends)
    as the whole frame."""
    profile = entry.profiles[0] if entry.profiles else {}
    feeds = {}
    for tensor in entry.inputs:
        shape = tuple(d if isinstance(d, int) and d > 0 else
                      int(profile[d][1]) if isinstance(d, str) and d in profile else 1
                      for d in tensor.shape)
        dtype = np.dtype(tensor.dtype)
        if len(shape) == 1 and dtype.kind == "f" and shape[0] % 2 == 0:
            half = shape[0] // 2
            feeds[tensor.name] = np.array([0.0] * half + [1.0] * half, dtype=dtype)
        else:
            feeds[tensor.name] = np.full(shape, 128 if dtype.kind == "u" else 0.5, dtype=dtype)
    return feeds


def models_only(app_extensions: dict[str, Any], effect: Any) -> dict[str, Any]:
    """One effect's models run once on synthetic inputs, timed: the self-test's fallback for
    an effect whose drawn photo a face gate refused. The models are taken one user at a time
    (a running job finishes first) and zeroised after."""
    manager = app_extensions["ephemera.jobs"]
    models = app_extensions["ephemera.models"]
    timings: dict[str, float] = {}
    error = ""
    started = time.perf_counter()
    with manager.models_in_use():
        for name in effect.models:
            entry = models.manifest.models.get(name)
            if entry is None:
                error = f"model {name} is not in the manifest"
                break
            one = time.perf_counter()
            try:
                models.get(name).run(_feeds(entry))
            except Exception as exc:  # reported on the page, never raised to the operator
                error = f"{name}: {type(exc).__name__}"
                break
            timings[name] = round((time.perf_counter() - one) * 1000, 1)
    return {"effect": effect.key, "title": effect.title, "ok": not error, "error": error,
            "models_ms": timings, "total_ms": round((time.perf_counter() - started) * 1000, 1)}


def self_test(app_extensions: dict[str, Any]) -> list[dict[str, Any]]:
    """A synthetic job through every registered effect, end to end (``web/self_test.py``)."""
    from appliance.web.self_test import self_test as end_to_end

    return end_to_end(app_extensions["ephemera.jobs"], app_extensions["ephemera.work"],
                      lambda effect: models_only(app_extensions, effect))
