"""Run the Flask app under gunicorn, hardened, with the job machinery in the worker.

Why gunicorn (and never waitress or the Werkzeug dev server): gunicorn does not spool request
bodies to temporary files and speaks TLS itself. One worker process owns the models, the job
keys and the secure buffers; threads serve concurrent requests (the jobs themselves run one at a
time on the job manager's worker thread).

Start-up order (``serve``): re-exec with the malloc environment if it is missing (freed memory
must be overwritten: P3 in docs/PRIVACY.md), the OS checks (strict mode refuses swap and
core dumps), ``harden_process`` (not dumpable, no core), then the RAM store's sweep of anything a
crashed run left behind. The worker releases every job when it exits.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from appliance.config import Config
from appliance.web.app import create_app, shutdown_app
from appliance.web.lan_tls import LanEndpoint

log = logging.getLogger("ephemera.server")
# Settings only newer gunicorn versions have (they turn features off, so absence is fine).
OPTIONAL_SETTINGS = ("control_socket_disable",)


class EphemeraServer(BaseApplication):
    """A gunicorn application configured from our Config, not from gunicorn's CLI."""

    def __init__(self, cfg: Config, options: dict[str, Any]) -> None:
        self.cfg_ephemera = cfg
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in OPTIONAL_SETTINGS and key not in self.cfg.settings:
                continue  # an older gunicorn without this feature: nothing to turn off
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app(self.cfg_ephemera)


# systemd's notification socket, taken from the arbiter's environment by ``serve`` so that only
# the worker (which owns the models and the job thread) says READY and pings the watchdog.
_NOTIFIER: Any = None


def _post_worker_init(worker: Any) -> None:
    """Chain the shutdown wipe in front of gunicorn's own SIGTERM/SIGINT handlers.

    gunicorn installs its handlers before loading the app; ours, installed after, first
    releases every job (store blobs, keys) and every secure buffer, then hands over to them.
    Then the health loop: open every model, READY=1, WATCHDOG=1 while the job thread lives.
    """
    from appliance.secure.shutdown import install_shutdown_wipe
    from appliance.service.journal import install_journal_audit

    manager = worker.wsgi.extensions.get("ephemera.jobs")
    install_shutdown_wipe(*([manager.release_all] if manager is not None else []))
    _sweep_dead_workers_blobs(worker)
    install_journal_audit()
    if manager is not None and _NOTIFIER is not None:
        from appliance.service.monitor import ServiceMonitor, open_all_models

        models = worker.wsgi.extensions["ephemera.models"]
        worker.wsgi.extensions["ephemera.monitor"] = ServiceMonitor(
            _NOTIFIER, manager, open_all_models(models)).start()


def _sweep_dead_workers_blobs(worker: Any) -> None:
    """A new worker owns no job yet, so every blob in the store is an earlier worker's.

    The arbiter starts a new worker after one was killed (kill -9, the OOM killer): that
    worker's blobs are unreadable (their keys died with it) but would fill the store for
    everyone until the next full start. The one worker owns the store, so sweeping here, before
    it serves anything, never touches a live job.
    """
    store = worker.wsgi.extensions.get("ephemera.store")
    if store is None:
        return
    swept = int(store.sweep_leftovers())
    if swept:
        log.warning("removed %d item(s) a previous worker left in the RAM store", swept)


def _worker_exit(_server: Any, worker: Any) -> None:
    """Release every job and wipe every secure buffer as the worker goes (SIGTERM, reload)."""
    from appliance.secure.buffers import REGISTRY

    app = getattr(worker, "wsgi", None)
    if _NOTIFIER is not None:
        _NOTIFIER.stopping()
    if app is not None and hasattr(app, "extensions"):
        monitor = app.extensions.get("ephemera.monitor")
        if monitor is not None:
            monitor.stop()
        shutdown_app(app)
    REGISTRY.release_all()


def _prepare_lan(cfg: Config) -> LanEndpoint | None:
    """The LAN listener's address and certificate (made on first run in development), and its
    TLS context handed to the worker class, which wraps only that listener's connections."""
    if not cfg.lan.enabled:
        return None
    from appliance.web.lan_tls import lan_endpoint, server_context
    from appliance.web.lan_worker import LanThreadWorker

    endpoint = lan_endpoint(cfg)
    LanThreadWorker.tls_contexts = {(endpoint.address, endpoint.port): server_context(endpoint)}
    return endpoint


def gunicorn_options(cfg: Config, lan: LanEndpoint | None = None) -> dict[str, Any]:
    """Two listeners, one worker process: the kiosk on loopback (plain HTTP) and, with the LAN
    enabled, the LAN address with TLS (docs/ARCHITECTURE.md, "Two faces of one service")."""
    return {
        "bind": [f"127.0.0.1:{cfg.kiosk.port}"] + ([lan.bind] if lan is not None else []),
        # sendfile would bypass TLS on the LAN listener (gunicorn only knows its own TLS).
        "sendfile": False,
        "workers": 1,
        # Phone uploads may hold at most 2 of them (web/upload_slots.py): the rest answer
        # status polls, pages and the kiosk while photos are gated.
        "threads": 8,
        # gthread whose event loop reads request heads and bodies under deadlines, a minimum
        # rate and a memory budget: slow clients never hold a thread (docs/SERVING.md).
        # It also speaks TLS on the LAN listener only (appliance/web/lan_worker.py).
        "worker_class": "appliance.web.lan_worker.LanThreadWorker",
        "worker_connections": 256,
        "accesslog": None,  # an access log would record tokens in URLs (?download=...)
        "errorlog": "-",
        "loglevel": "info",
        "timeout": 120,
        "graceful_timeout": 10,
        # Request bodies are never spooled by gunicorn; its worker heartbeat file is, by
        # default, in the system temp dir: keep it on tmpfs with the store.
        "worker_tmp_dir": "/dev/shm",
        "post_worker_init": _post_worker_init,
        "worker_exit": _worker_exit,
        # gunicorn >= 25.1 opens a control socket under $HOME/.gunicorn (persistent storage)
        # by default; the booth has no use for it.
        "control_socket_disable": True,
    }


def _warn_missing_models(cfg: Config) -> None:
    """Say at start-up, not at the first guest's job, that the models are not built."""
    from appliance.models.manifest import load_manifest

    missing = [name for name, entry in load_manifest().models.items()
               if not entry.onnx_path(cfg.models.engines_dir).is_file()]
    if missing:
        print(f"ephemera: the models {', '.join(sorted(missing))} are not built in "
              f"{cfg.models.engines_dir}; every job will fail until you run `ephemera build` "
              "(or `make models`)", file=sys.stderr)


def prepare_process(cfg: Config) -> int:
    """Everything before gunicorn starts; returns how many leftover blobs the sweep removed."""
    from appliance.secure.oscheck import harden_process, startup_checks
    from appliance.secure.store import RamStore

    startup_checks(cfg)
    harden_process()
    _warn_missing_models(cfg)
    swept = int(RamStore.from_config(cfg).sweep_leftovers())
    if swept:
        print(f"ephemera: removed {swept} leftover item(s) of an earlier run from the RAM store",
              file=sys.stderr)
    return swept


def serve(cfg: Config) -> int:
    from appliance.secure.malloc_env import reexec_with_malloc_env

    lan = _prepare_lan(cfg)  # before anything else: a bad LAN setting is said at once
    # ONNX Runtime's telemetry is forced off by importing appliance (see appliance/__init__.py).
    # Nor does the booth write bytecode caches next to its code on the device's flash.
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    sys.dont_write_bytecode = True
    reexec_with_malloc_env()  # returns only when the settings are already in place
    # Audit events and job failures go to stderr (the journal on a device); never image data.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    prepare_process(cfg)
    global _NOTIFIER
    from appliance.service.notify import Notifier

    _NOTIFIER = Notifier.take_from_environment()
    EphemeraServer(cfg, gunicorn_options(cfg, lan)).run()
    return 0
