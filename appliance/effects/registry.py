"""The effect registry: every module in ``appliance.effects`` that defines ``EFFECT`` is one.

Why found, not listed: adding an effect must touch one module (and its graphs), not a list in the
API, another in the command line and a third in the kiosk. Sub-packages (an effect's helpers,
the generated graphs) and modules without ``EFFECT`` are not effects.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

import appliance.effects as effects_package
from appliance.effects.base import Effect
from appliance.errors import UserFacingError

NOT_EFFECTS = frozenset({"base", "registry", "checks"})


@functools.lru_cache(maxsize=1)
def _discover() -> tuple[Effect, ...]:
    found: dict[str, Effect] = {}
    for info in pkgutil.iter_modules(effects_package.__path__):
        if info.ispkg or info.name in NOT_EFFECTS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{effects_package.__name__}.{info.name}")
        effect = getattr(module, "EFFECT", None)
        if effect is None:
            continue
        if not isinstance(effect, Effect):
            raise TypeError(f"{module.__name__}.EFFECT is a {type(effect).__name__}, "
                            "not an Effect")
        if effect.key in found:
            raise ValueError(f"two effects use the key {effect.key!r}")
        found[effect.key] = effect
    return tuple(found[key] for key in sorted(found))


def effects() -> dict[str, Effect]:
    """Every registered effect by key, in key order (a fresh dict: callers may not change ours)."""
    return {effect.key: effect for effect in _discover()}


def get_effect(key: str) -> Effect:
    """The effect ``key``; 400 ``unknown_effect`` naming the ones there are otherwise."""
    found = effects()
    if key not in found:
        raise UserFacingError("unknown_effect", f"There is no effect {key!r}.", status=400,
                              remedy="Use one of: " + ", ".join(found) + ".")
    return found[key]
