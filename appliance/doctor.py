"""`ephemera doctor`: one line per check, pass or fail, and the remedy when it fails.

Why a registry: each concern (OS checks, models, store, web) owns its own checks and registers
them here with ``@check``; the doctor only runs and prints them. A technician in the field reads
this output, so every failure says what to do, not just what is wrong.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from appliance.config import Config


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    remedy: str = ""
    warning: bool = False  # not fatal in this mode (e.g. swap on a development laptop)


CheckFn = Callable[[Config], CheckResult]
_CHECKS: list[tuple[str, CheckFn]] = []

# Modules that register checks; imported lazily so `doctor` does not pay for the whole service.
CHECK_MODULES: list[str] = [
    "appliance.secure.checks",
    "appliance.models.backend_checks",
    "appliance.models.model_checks",
    "appliance.camera.checks",
    "appliance.printing.checks",
    "appliance.effects.checks",
    "appliance.media.video_checks",
]


def check(name: str) -> Callable[[CheckFn], CheckFn]:
    """Register a doctor check under a short name."""

    def register(fn: CheckFn) -> CheckFn:
        _CHECKS.append((name, fn))
        return fn

    return register


def run_checks(cfg: Config) -> list[tuple[str, CheckResult]]:
    for module in CHECK_MODULES:
        importlib.import_module(module)
    results = []
    for name, fn in _CHECKS:
        try:
            result = fn(cfg)
        except Exception as exc:  # a broken check is itself a failure to report
            result = CheckResult(False, f"check crashed: {exc!r}", "report this as a bug")
        results.append((name, result))
    return results


def format_results(results: list[tuple[str, CheckResult]]) -> str:
    width = max((len(name) for name, _ in results), default=0)
    lines = []
    for name, result in results:
        status = "PASS" if result.ok else ("WARN" if result.warning else "FAIL")
        line = f"{status}  {name.ljust(width)}  {result.detail}"
        if not result.ok and result.remedy:
            line += f"\n      {' ' * width}  -> {result.remedy}"
        lines.append(line)
    return "\n".join(lines)


@check("config")
def _config_loaded(cfg: Config) -> CheckResult:
    return CheckResult(True, f"mode={cfg.mode}, kiosk 127.0.0.1:{cfg.kiosk.port}, "
                             f"LAN {'on' if cfg.lan.enabled else 'off'}")
