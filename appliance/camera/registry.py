"""Camera sources are found, not listed: every module of this package with a module-level
``SOURCE`` (a ``SourcePlugin``) is one. Adding a camera type is adding one module."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.config import Config


@dataclass(frozen=True)
class SourcePlugin:
    name: str          # the value of camera.source
    summary: str
    factory: Callable[[Config], Any]  # Config -> CameraSource


def sources() -> dict[str, SourcePlugin]:
    import appliance.camera as package

    found: dict[str, SourcePlugin] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        plugin = getattr(module, "SOURCE", None)
        if isinstance(plugin, SourcePlugin):
            found[plugin.name] = plugin
    return found


def make_source(cfg: Config) -> Any:
    """The configured source, not yet started."""
    available = sources()
    if cfg.camera.source not in available:
        raise ValueError(f"camera.source = {cfg.camera.source!r}: no such source; known: "
                         + ", ".join(sorted(available)))
    return available[cfg.camera.source].factory(cfg)
