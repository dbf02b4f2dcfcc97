"""`ephemera doctor` check: every model an effect declares is in the model manifest.

Why: an effect names the models and generated graphs it runs (``Effect.models``); one missing
from ``engines/models.toml`` would only fail when a guest picks that effect. This line says
which, before the event.
"""

from __future__ import annotations

from appliance.config import Config
from appliance.doctor import CheckResult, check
from appliance.effects.registry import effects
from appliance.models.manifest import Manifest, load_manifest


def models_missing(manifest: Manifest) -> dict[str, list[str]]:
    """Effect key -> the models it declares that the manifest does not list."""
    missing = {key: [m for m in effect.models if m not in manifest.models]
               for key, effect in effects().items()}
    return {key: names for key, names in missing.items() if names}


@check("effects")
def effect_models(cfg: Config) -> CheckResult:
    found = effects()
    missing = models_missing(load_manifest())
    if not missing:
        return CheckResult(True, f"{len(found)} effect(s) ({', '.join(found)}); every model "
                                 "they need is in the manifest")
    return CheckResult(False, "; ".join(f"{key} needs {', '.join(names)}, not in the manifest"
                                        for key, names in missing.items()),
                       "install a release whose engines/models.toml lists them, then run "
                       "`ephemera build`")
