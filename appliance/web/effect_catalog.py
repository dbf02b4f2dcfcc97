"""The effect registry as JSON, for the screens (``GET /api/effects``) and the gallery.

Why from the registry: the screens build their effect picker and parameter controls from this,
so a new effect module shows up on the kiosk without touching the web code.
"""

from __future__ import annotations

from typing import Any


def param_json(param: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": param.name, "kind": param.kind, "default": param.default,
                            "help": param.help}
    if param.minimum is not None:
        body["minimum"] = param.minimum
    if param.maximum is not None:
        body["maximum"] = param.maximum
    if param.choices:
        body["choices"] = list(param.choices)
    return body


def effect_json(effect: Any) -> dict[str, Any]:
    return {
        "key": effect.key,
        "title": effect.title,
        "summary": effect.summary,
        "photos": {"min": effect.photos[0], "max": effect.photos[1]},
        "faces": effect.faces,
        "gates": sorted(effect.gates),
        "params": [param_json(p) for p in effect.params],
        "outputs": [{"name": o.name, "media_type": o.media_type, "title": o.title}
                    for o in effect.outputs],
    }


def catalog() -> list[dict[str, Any]]:
    """Every registered effect, in key order."""
    from appliance.effects.registry import effects

    return [effect_json(effect) for _key, effect in sorted(effects().items())]
