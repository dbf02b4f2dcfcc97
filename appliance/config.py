"""One validated configuration: a TOML file, overridden by ``EPHEMERA_*`` environment variables.

Why one module: every setting is checked in one place at start-up, so a typo in
``/etc/ephemera/ephemera.toml`` stops the service with a message naming the key, the bad value
and what is allowed, instead of surfacing later as a strange failure in the middle of an event.

Precedence (lowest first): built-in defaults of the profile, the TOML file, the environment.
An environment variable is ``EPHEMERA_<SECTION>_<KEY>`` in upper case (``EPHEMERA_KIOSK_PORT``);
top-level keys are ``EPHEMERA_<KEY>`` (``EPHEMERA_MODE``). Lists in the environment are
comma-separated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # JetPack 6 ships Python 3.10
    import tomli as tomllib

DEVICE_CONFIG_PATH = Path("/etc/ephemera/ephemera.toml")
ENV_PREFIX = "EPHEMERA_"
RETENTION_HARD_CAP_MINUTES = 24 * 60
RETENTION_DEFAULT_MINUTES = 15
RETENTION_SWEEP_INTERVAL_S = 1.0  # how often expired jobs are looked for and released
MODES = ("development", "strict")
BACKENDS = ("auto", "onnxruntime", "tensorrt")
NO_DLA_CORE = -1  # models.dla_core's value for "build and run on the GPU only"
# Settings accepted and validated now for features still being built, and what will read them:
# their help and every message about them say so, so nobody expects them to act today.
NOT_READ_YET: dict[str, str] = {}


def _ascii_digits(text: str) -> bool:
    """0-9 only: ``isdigit`` also passes "²" (which ``int`` rejects) and non-ASCII digits."""
    return text.isascii() and text.isdigit()


class ConfigError(ValueError):
    """A setting is wrong; the message names the key, the value and what is allowed."""


def _default_store_path() -> str:
    """Where the RAM store lives when nothing is configured.

    ``/dev/shm`` is tmpfs on every mainstream Linux, so a laptop without root works; on a device
    systemd's ``RuntimeDirectory=`` gives ``/run/ephemera`` (also tmpfs).
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return str(Path(runtime) / "ephemera" / "store")
    return f"/dev/shm/ephemera-{os.getuid()}/store"


def _default_receipt_key_path() -> str:
    """The booth's deletion-receipt signing key: made at first start in development (in the
    user's state directory, never in the RAM store); put there by provisioning on a device."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(state) / "ephemera" / "receipt-key.pem")


def _repo_engines_dir() -> str:
    return str(Path(__file__).resolve().parent.parent / "engines")


# -- validators: each returns the cleaned value or raises ValueError(<what is allowed>) --------


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError("an integer port between 1 and 65535")
    return value


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("a whole number greater than 0")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError("one of " + ", ".join(repr(o) for o in options))
        return str(value)

    return check


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a string")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def _ip_or_empty(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("an IPv4 or IPv6 address, or empty")
    if value:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("an IPv4 or IPv6 address (e.g. 192.168.4.1), or empty") from None
    return value


def _interface_name(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 15 or any(c in value for c in "/ \t"):
        raise ValueError("a network interface name such as wlan0 or eth0 (at most 15 characters)")
    return value


def _cidrs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError("a list of networks in CIDR form, e.g. [\"192.168.4.0/24\"]")
    cleaned = []
    for item in value:
        try:
            net = ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ValueError(f"networks in CIDR form; {item!r} is not one") from None
        if net.is_global:
            raise ValueError(f"private (LAN) networks only; {item!r} is a public range")
        cleaned.append(str(net))
    return tuple(cleaned)


def _byte_size(value: Any) -> int:
    """Accept 536870912, "512MiB", "1 GiB", "800M" and the like."""
    if isinstance(value, bool):
        raise ValueError("a size in bytes or with a unit, e.g. \"512MiB\"")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "K": 1 << 10, "M": 1 << 20,
                 "G": 1 << 30, "B": 1}
        for suffix, scale in units.items():
            if text.endswith(suffix) and _ascii_digits(text[: -len(suffix)]):
                number = int(text[: -len(suffix)]) * scale
                break
        else:
            if not _ascii_digits(text):
                raise ValueError("a size in bytes or with a unit, e.g. \"512MiB\"")
            number = int(text)
    else:
        raise ValueError("a size in bytes or with a unit, e.g. \"512MiB\"")
    if number < 1 << 20:
        raise ValueError("a size of at least 1MiB, e.g. \"512MiB\"")
    return number


def _retention_minutes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= (
        RETENTION_HARD_CAP_MINUTES
    ):
        raise ValueError(f"whole minutes from 1 to {RETENTION_HARD_CAP_MINUTES} (24 hours)")
    return value


def _dla_core(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not NO_DLA_CORE <= value <= 7:
        raise ValueError(f"a DLA core number (0 or 1 on Jetson Orin), or {NO_DLA_CORE} for the "
                         "GPU only")
    return value


def _nice(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 19:
        raise ValueError("a nice value from 0 (off) to 19 (yield the most)")
    return value


def _pin_hash(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("an scrypt hash of the operator PIN, or empty")
    if value and not value.startswith("scrypt$"):
        raise ValueError("an scrypt hash of the operator PIN (starts with 'scrypt$'), never the "
                         "PIN itself")
    return value


def _setting(check: Callable[[Any], Any], default: Any, help: str) -> Any:
    """A dataclass field that carries its validator and its one-line help."""
    if callable(default):
        return field(default_factory=default, metadata={"check": check, "help": help})
    return field(default=default, metadata={"check": check, "help": help})


# -- the schema ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KioskConfig:
    port: int = _setting(_port, 8080, "kiosk port, served on loopback (127.0.0.1) only")
    idle_timeout_s: int = _setting(_positive_int, 90,
                                   "seconds without a touch before the kiosk wipes its session")
    receipt_key: str = _setting(_text, _default_receipt_key_path,
                                "Ed25519 key (PEM, mode 0600) that signs deletion receipts; made "
                                "at first start in development mode")
    wifi_file: str = _setting(_text, "/etc/ephemera/wifi.json",
                              "the booth's own Wi-Fi as provisioning writes it (JSON with its "
                              "WIFI: QR text); the kiosk shows a Wi-Fi QR code beside the "
                              "download QR while this file is there")


@dataclass(frozen=True)
class LanConfig:
    enabled: bool = _setting(_bool, False, "serve guests' phones on the LAN (HTTPS), beside the "
                             "kiosk on loopback")
    interface: str = _setting(_interface_name, "", "LAN interface to bind (e.g. wlan0)")
    address: str = _setting(_ip_or_empty, "", "LAN address to bind; overrides interface")
    port: int = _setting(_port, 8443, "LAN HTTPS port")
    allowed_cidrs: tuple[str, ...] = _setting(
        _cidrs, lambda: ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
        "client networks allowed to reach the LAN port; everything else is refused")
    tls_cert: str = _setting(_text, "", "PEM certificate for the LAN port (development: made "
                             "on first run, with its CA beside it as ca.pem)")
    tls_key: str = _setting(_text, "", "PEM private key for the LAN port")


@dataclass(frozen=True)
class StoreConfig:
    path: str = _setting(_text, _default_store_path,
                         "RAM store directory; must be on tmpfs or ramfs")
    quota_bytes: int = _setting(_byte_size, 512 << 20, "most bytes the RAM store may hold")
    max_jobs: int = _setting(_positive_int, 32, "most jobs held in the RAM store at once")


@dataclass(frozen=True)
class RetentionConfig:
    default_minutes: int = _setting(_retention_minutes, RETENTION_DEFAULT_MINUTES,
                                    "how long a result is kept")
    hard_cap_minutes: int = _setting(_retention_minutes, RETENTION_HARD_CAP_MINUTES,
                                     "the longest any result may be kept (at most 24 hours)")


@dataclass(frozen=True)
class QueueConfig:
    depth: int = _setting(_positive_int, 4, "jobs waiting at most; more get 429 with a retry hint")


@dataclass(frozen=True)
class ModelsConfig:
    backend: str = _setting(_choice(BACKENDS), "auto",
                            "inference backend; auto picks TensorRT where it is importable")
    engines_dir: str = _setting(_text, _repo_engines_dir,
                                "where built models and engines live")
    background_nice: int = _setting(_nice, 10,
                                    "nice value (0-19) of the model threads and the job worker, "
                                    "so pages and status answers get the CPU first; 0 turns it "
                                    "off")
    dla_core: int = _setting(_dla_core, NO_DLA_CORE,
                             "Jetson Orin DLA core (0 or 1) for TensorRT engines, with GPU "
                             "fallback for layers DLA cannot run; -1 builds for the GPU only")

    @property
    def dla(self) -> int | None:
        """The DLA core to build and run engines on, or None for the GPU only."""
        return None if self.dla_core == NO_DLA_CORE else self.dla_core


@dataclass(frozen=True)
class AdminConfig:
    pin_hash: str = _setting(_pin_hash, "", "scrypt hash of the operator PIN for the admin page "
                             "(/admin; set it with `ephemera admin-pin`); empty disables admin")


CAMERA_SOURCES = ("browser", "gstreamer", "gphoto2")


def _pipeline(value: Any) -> str:
    if not isinstance(value, str) or "fdsink" in value or "filesink" in value:
        raise ValueError("a GStreamer source fragment (e.g. \"v4l2src device=/dev/video0\"), "
                         "or empty for the source's default; the service adds the sinks itself")
    return value


def _resolution(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):  # the environment gives "1920,1080" as strings
        value = [int(v) if isinstance(v, str) and v.isascii() and v.isdigit() else v
                 for v in value]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 16384
                       for v in value)):
        raise ValueError("[width, height] in pixels, e.g. [1920, 1080]")
    return (int(value[0]), int(value[1]))


def _positive_float(value: Any) -> float:
    if isinstance(value, str):  # from the environment
        with contextlib.suppress(ValueError):
            value = float(value) if value.strip().replace(".", "", 1).isdigit() else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError("a number greater than 0")
    return float(value)


@dataclass(frozen=True)
class CameraConfig:
    source: str = _setting(_choice(CAMERA_SOURCES), "browser",
                           "where photos come from: the kiosk page's own camera (browser), a "
                           "GStreamer pipeline (CSI or USB camera) or a DSLR through gphoto2")
    pipeline: str = _setting(_pipeline, "",
                             "gstreamer: the source part of the pipeline; empty picks the "
                             "default for the device (nvarguscamerasrc on a Jetson, else v4l2src)")
    still_size: tuple[int, int] = _setting(_resolution, lambda: (1920, 1080),
                                           "gstreamer: full-resolution still [width, height]")
    preview_size: tuple[int, int] = _setting(_resolution, lambda: (640, 360),
                                             "gstreamer: live preview [width, height]")
    preview_fps: int = _setting(_positive_int, 15, "gstreamer: live preview frames per second")
    still_fps: int = _setting(_positive_int, 5,
                              "gstreamer: full-resolution frames per second kept ready for a "
                              "capture (lower it for 12-megapixel sensors)")
    capture_timeout_s: float = _setting(_positive_float, 5.0,
                                        "seconds a capture waits for a frame before the guest "
                                        "is offered a retry")
    retry_max_s: float = _setting(_positive_float, 10.0,
                                  "longest pause between reconnection attempts (back-off)")


@dataclass(frozen=True)
class PrinterConfig:
    enabled: bool = _setting(_bool, False, "offer printing on the kiosk's result screen")
    uri: str = _setting(_text, "ipp://localhost:631/printers/ephemera",
                        "IPP printer URI: an IPP Everywhere printer (ipp://printer.local/ipp/"
                        "print, ipp-usb's ipp://localhost:60000/ipp/print) or a CUPS queue")
    frame_overlay: str = _setting(_text, "", "PNG with transparency drawn over every print "
                                             "(branding, a frame); empty for none")
    per_session_limit: int = _setting(_positive_int, 2, "prints one guest session may make")
    allow_phones: bool = _setting(_bool, False,
                                  "let guests' phones print too (by default only the kiosk)")
    timeout_s: float = _setting(_positive_float, 10.0, "seconds to wait for the printer")


@dataclass(frozen=True)
class SecureConfig:
    memfd_secret: bool = _setting(
        _bool, True, "keep secure buffers in memfd_secret memory where the kernel has it "
        "(hidden even from /proc/PID/mem); false falls back to mlock'd anonymous memory, which "
        "the memory-scan tests use to see inside a live job")


@dataclass(frozen=True)
class EffectsConfig:
    headshot_styles_dir: str = _setting(
        _text, "", "folder of the operator's own headshot styles (STYLE.toml, its .cube and "
        "backdrop image), checked at start-up; empty: only the shipped styles")


@dataclass(frozen=True)
class Config:
    """The whole validated configuration. Immutable: read once at start-up."""

    mode: str = _setting(_choice(MODES), "development",
                         "strict refuses to start when swap or core dumps could leak images")
    kiosk: KioskConfig = field(default_factory=KioskConfig)
    lan: LanConfig = field(default_factory=LanConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    printer: PrinterConfig = field(default_factory=PrinterConfig)
    secure: SecureConfig = field(default_factory=SecureConfig)
    effects: EffectsConfig = field(default_factory=EffectsConfig)

    @property
    def strict(self) -> bool:
        return self.mode == "strict"


SECTIONS: dict[str, type] = {
    f.name: f.type if isinstance(f.type, type) else globals()[str(f.type)]
    for f in dataclasses.fields(Config)
    if not f.metadata
}


def _env_value(raw: str, current: Any) -> Any:
    """Turn an environment string into the type of the setting it overrides."""
    if isinstance(current, bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return raw
    if isinstance(current, int):
        stripped = raw.strip()
        return int(stripped) if _ascii_digits(stripped.removeprefix("-")) else raw
    if isinstance(current, tuple):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _build(cls: type, raw: Mapping[str, Any], where: str,
           env: Mapping[str, str], env_prefix: str) -> Any:
    """Validate one section: file values, then environment overrides, then each check."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        label = f"[{where}]" if where else "the top level"
        allowed = ", ".join(sorted(name for name, f in known.items() if f.metadata))
        raise ConfigError(f"unknown key {unknown[0]!r} in {label}; known keys: {allowed}")
    values: dict[str, Any] = {}
    for name, spec in known.items():
        dotted = f"{where}.{name}" if where else name
        if not spec.metadata:  # a nested section
            section_raw = raw.get(name, {})
            if not isinstance(section_raw, Mapping):
                raise ConfigError(f"{name}: expected a [{name}] table, got {section_raw!r}")
            values[name] = _build(SECTIONS[name], section_raw, name, env,
                                  f"{ENV_PREFIX}{name.upper()}_")
            continue
        if spec.default is not dataclasses.MISSING:
            value: Any = spec.default
        else:
            value = spec.default_factory()  # type: ignore[operator]
        origin = "default"
        if name in raw:
            value, origin = raw[name], "file"
        env_name = f"{env_prefix}{name.upper()}"
        if env_name in env:
            value, origin = _env_value(env[env_name], value), f"environment {env_name}"
        try:
            values[name] = spec.metadata["check"](value)
        except ValueError as exc:
            raise ConfigError(f"{dotted} = {value!r} (from {origin}) is not allowed: "
                              f"expected {exc}{_not_read_yet(dotted)}") from None
    return cls(**values)


def _not_read_yet(dotted: str) -> str:
    reader = NOT_READ_YET.get(dotted)
    return f" (nothing reads {dotted} yet: it is for {reader})" if reader else ""


def _cross_checks(cfg: Config) -> None:
    if cfg.retention.default_minutes > cfg.retention.hard_cap_minutes:
        raise ConfigError(
            f"retention.default_minutes = {cfg.retention.default_minutes} exceeds "
            f"retention.hard_cap_minutes = {cfg.retention.hard_cap_minutes}: lower the default")
    if cfg.lan.enabled:
        if not (cfg.lan.interface or cfg.lan.address):
            raise ConfigError("lan.enabled = true needs lan.interface (e.g. \"wlan0\") "
                              "or lan.address (e.g. \"192.168.4.1\")"
                              + _not_read_yet("lan.interface"))
        if cfg.strict and not (cfg.lan.tls_cert and cfg.lan.tls_key):
            # Development makes a CA and certificate on first run (appliance/web/lan_tls.py).
            raise ConfigError("lan.enabled = true needs lan.tls_cert and lan.tls_key: "
                              "guests' phones are served over HTTPS only")
        if not cfg.lan.allowed_cidrs:
            raise ConfigError("lan.allowed_cidrs is empty: with the LAN enabled, list the "
                              "guest networks, e.g. [\"192.168.4.0/24\"]")
        if cfg.lan.port == cfg.kiosk.port:
            raise ConfigError(f"lan.port = {cfg.lan.port} is also kiosk.port: pick two ports")


def config_path_from(env: Mapping[str, str], explicit: str | Path | None = None) -> Path | None:
    """The file to read: an explicit path, then ``EPHEMERA_CONFIG``, then the device's file."""
    if explicit:
        return Path(explicit)
    if env.get("EPHEMERA_CONFIG"):
        return Path(env["EPHEMERA_CONFIG"])
    return DEVICE_CONFIG_PATH if DEVICE_CONFIG_PATH.is_file() else None


def load_config(path: str | Path | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """Read, override and validate. Raises ConfigError with a message fit for an operator."""
    env = os.environ if env is None else env
    file_path = config_path_from(env, path)
    raw: dict[str, Any] = {}
    if file_path is not None:
        try:
            with open(file_path, "rb") as handle:
                raw = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"configuration file {file_path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {file_path} is not valid TOML: {exc}") from None
    cfg: Config = _build(Config, raw, "", env, ENV_PREFIX)
    _cross_checks(cfg)
    return cfg


def describe() -> list[tuple[str, Any, str]]:
    """Every setting as (dotted key, default, help): for `ephemera config --defaults` and docs."""
    rows: list[tuple[str, Any, str]] = []
    defaults = Config()
    for f in dataclasses.fields(Config):
        if f.metadata:
            rows.append((f.name, getattr(defaults, f.name), f.metadata["help"]))
            continue
        section = getattr(defaults, f.name)
        for sub in dataclasses.fields(section):
            dotted = f"{f.name}.{sub.name}"
            rows.append((dotted, getattr(section, sub.name),
                         sub.metadata["help"] + _not_read_yet(dotted)))
    return rows
