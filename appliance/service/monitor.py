"""The worker's health loop: open every model, say READY, then ping the watchdog while healthy.

"Healthy" means what a guest needs: this process holds every model open and its job thread is
alive. A worker whose job thread died (or that never finished loading) stops pinging, and
systemd's ``WatchdogSec=`` restarts the whole service, which releases and wipes everything.
STATUS lines carry counts only ("ready: 3 jobs queued, 1 running"), never ids or contents.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from appliance.service.notify import Notifier

log = logging.getLogger("ephemera.service")
IDLE_STATUS_INTERVAL_S = 5.0


class Jobs(Protocol):
    def worker_alive(self) -> bool: ...

    def stats(self) -> dict[str, Any]: ...


def status_line(stats: dict[str, Any]) -> str:
    """``ready: 3 jobs queued, 1 running`` from the job manager's counts."""
    states = stats.get("states", {})
    queued, running = int(states.get("queued", 0)), int(states.get("running", 0))
    noun = "job" if queued == 1 else "jobs"
    return f"ready: {queued} {noun} queued, {running} running"


class ServiceMonitor:
    """Runs on its own daemon thread in the process that owns the models and the jobs."""

    def __init__(self, notifier: Notifier, jobs: Jobs, load_models: Callable[[], Iterable[str]],
                 *, interval_s: float | None = None) -> None:
        self.notifier = notifier
        self.jobs = jobs
        self.load_models = load_models
        self.interval_s = interval_s or notifier.watchdog_interval_s or IDLE_STATUS_INTERVAL_S
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ephemera-monitor", daemon=True)

    def start(self) -> ServiceMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def healthy(self) -> bool:
        return self.ready.is_set() and self.jobs.worker_alive()

    def _load(self) -> bool:
        self.notifier.status("preparing: opening the models")
        try:
            names = list(self.load_models())
        except Exception as exc:  # the status says why; no READY, so systemd restarts us
            log.error("models failed to open: %s", exc)
            self.notifier.status(f"not ready: models failed to open ({type(exc).__name__}); "
                                 "run `ephemera build` and `ephemera doctor`")
            return False
        self.ready.set()
        self.notifier.ready(status_line(self.jobs.stats()))
        log.info("ready: %d models open", len(names))
        return True

    def _run(self) -> None:
        if not self._load():
            return
        while not self._stop.wait(self.interval_s):
            if not self.jobs.worker_alive():
                self.notifier.status("unhealthy: the job worker stopped; waiting for the "
                                     "watchdog to restart the service")
                log.error("the job worker thread is not alive; no more watchdog pings")
                return
            self.notifier.notify("WATCHDOG=1", f"STATUS={status_line(self.jobs.stats())}")


def open_all_models(models: Any) -> Callable[[], list[str]]:
    """A loader for ``ServiceMonitor``: opens every model of the manifest in ``models``."""

    def load() -> list[str]:
        names = sorted(models.manifest.models)
        for name in names:
            models.get(name)
        return names

    return load
