"""Drive configuration: native TOML, emergence's drives.json as-is, or built-in defaults.

Everything is decoded into msgspec Structs, so a wrong type, a missing key or an
out-of-range number is caught in one place and reported as ONE line naming the
file, the key and what was expected (a ConfigError, never a traceback).
"""

from __future__ import annotations

import itertools
import logging
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec

from agentctx._core.errors import ConfigError
from agentctx._core.protocol import Band, drive_key

__all__ = [
    "BAND_ORDER",
    "DEFAULT_BANDS",
    "DEFAULT_SOURCE",
    "BandRatios",
    "Config",
    "DriveConfig",
    "Settings",
    "default_config",
    "load_config",
    "parse_config",
]

log = logging.getLogger(__name__)

# Ratio (pressure / threshold) at which each band starts; below "available" is "latent".
BAND_ORDER: Final[tuple[Band, ...]] = ("available", "elevated", "triggered", "crisis", "emergency")
DEFAULT_BANDS: Final[dict[str, float]] = {
    "available": 0.30,
    "elevated": 0.75,
    "triggered": 1.0,
    "crisis": 1.5,
    "emergency": 2.0,
}
DEFAULT_SOURCE: Final = "built-in defaults"  # Config.source of the built-in drives
_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")

# Bounded floats: the bounds also reject NaN and infinity, which TOML can spell.
Positive = Annotated[float, msgspec.Meta(gt=0.0, le=1e9)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0, le=1e9)]
Hour = Annotated[int, msgspec.Meta(ge=0, le=23)]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Ratio = Annotated[float, msgspec.Meta(gt=0.0, le=100.0)]


class BandRatios(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Per-drive band overrides; a key that is not a band name is an error."""

    available: Ratio | None = None
    elevated: Ratio | None = None
    triggered: Ratio | None = None
    crisis: Ratio | None = None
    emergency: Ratio | None = None


class DriveConfig(msgspec.Struct, kw_only=True):
    """One drive. Unknown keys are ignored so emergence's drives.json loads as-is."""

    threshold: Positive
    rate_per_hour: NonNegative = 0.0
    description: str = ""
    prompt: str = ""
    activity_driven: bool = False
    bands: BandRatios | None = None
    # emergence spells the per-drive band overrides "thresholds"
    thresholds: BandRatios | None = None

    def band_ratios(self) -> dict[str, float]:
        merged = dict(DEFAULT_BANDS)
        for source in (self.thresholds, self.bands):
            if source is not None:
                merged.update(
                    (k, v) for k, v in msgspec.structs.asdict(source).items() if v is not None
                )
        return merged


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The `[sidecar]` table; every key optional. Typos are errors, not silent defaults."""

    tick_interval: Annotated[float, msgspec.Meta(ge=0.001, le=86400.0)] = 1.0
    max_pressure_ratio: Annotated[float, msgspec.Meta(ge=1.0, le=100.0)] = 1.5
    quiet_hours: tuple[Hour, Hour] | None = None
    quiet_rate_factor: Fraction = 0.25
    satisfied_hold_s: Annotated[float, msgspec.Meta(ge=0.0, le=86400.0)] = 60.0
    save_interval: Annotated[float, msgspec.Meta(ge=1.0, le=86400.0)] = 60.0
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 << 20)] = 1 << 20
    max_clients: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 512
    client_send_timeout: Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)] = 10.0


class Config(msgspec.Struct, kw_only=True):
    drives: dict[str, DriveConfig]
    sidecar: Settings = msgspec.field(default_factory=Settings)
    source: str = DEFAULT_SOURCE


_DEFAULT_DRIVES: Final[dict[str, dict[str, Any]]] = {
    "CARE": {
        "threshold": 20,
        "rate_per_hour": 2.0,
        "description": "Attend to the human: the relationship drive.",
        "prompt": "Your CARE drive triggered. Check in with your human.",
    },
    "MAINTENANCE": {
        "threshold": 25,
        "rate_per_hour": 1.5,
        "description": "System health and upkeep.",
        "prompt": "Your MAINTENANCE drive triggered. Tend to your systems: services, logs, docs.",
    },
    "REST": {
        "threshold": 30,
        "rate_per_hour": 0.0,
        "activity_driven": True,
        "description": "Recovery. Builds from work, not time.",
        "prompt": "Your REST drive triggered. Consolidate and reflect; start nothing new.",
    },
    "WANDER": {
        "threshold": 20,
        "rate_per_hour": 1.0,
        "description": "Unstructured time for curiosity.",
        "prompt": "Your WANDER drive triggered. Follow whatever interests you.",
    },
}


def default_config() -> Config:
    """The built-in drives, used when there is no config file at all."""
    return _build({"drives": _DEFAULT_DRIVES}, DEFAULT_SOURCE)


def _convert(value: Any, typ: type[Any], source: str, key: str) -> Any:
    """msgspec.convert, with its error rewritten as `file: key: expected ...`."""
    try:
        return msgspec.convert(value, typ, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        head, sep, where = text.rpartition(" - at `")
        message, sub = (head, where.rstrip("`")) if sep else (text, "$")
        sub = sub.removeprefix("$").lstrip(".")
        full = f"{key}.{sub}" if sub else key
        if m := re.match(r"Object contains unknown field `(.*)`", message):
            if full.endswith(("bands", "thresholds")):
                message = f"unknown band (expected one of {', '.join(BAND_ORDER)})"
            else:
                message = "unknown key (check the spelling)"
            full = f"{full}.{m.group(1)}"
        elif m := re.match(r"Object missing required field `(.*)`", message):
            message = "missing (required)"
            full = f"{full}.{m.group(1)}"
        raise ConfigError(f"{source}: {full}: {message}") from None


def _build(raw: Any, source: str) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a table/object at the top level")
    drives_raw = raw.get("drives")
    if not isinstance(drives_raw, dict):
        raise ConfigError(f"{source}: drives: expected a table of drives, e.g. [drives.CARE]")
    drives = {
        str(name): _convert(spec, DriveConfig, source, f"drives.{name}")
        for name, spec in drives_raw.items()
    }
    settings = _convert(raw.get("sidecar", {}), Settings, source, "sidecar")
    cfg = Config(drives=drives, sidecar=settings, source=source)
    _check(cfg, source)
    return cfg


def _check(cfg: Config, source: str) -> None:
    """Rules a type cannot say: names, band order, quiet hours, at least one drive."""
    if not cfg.drives:
        raise ConfigError(f"{source}: drives: expected at least one drive")
    normalized: dict[str, DriveConfig] = {}
    for name, drive in cfg.drives.items():
        upper = drive_key(name)
        if not _NAME.match(upper):
            raise ConfigError(
                f"{source}: drives.{name}: expected a name of letters, digits and _ "
                "starting with a letter (at most 64)"
            )
        if upper in normalized:
            raise ConfigError(f"{source}: drives.{name}: duplicate of drive {upper}")
        ratios = drive.band_ratios()
        values = [ratios[b] for b in BAND_ORDER]
        if any(a >= b for a, b in itertools.pairwise(values)):
            pairs = ", ".join(f"{b}={ratios[b]:g}" for b in BAND_ORDER)
            raise ConfigError(
                f"{source}: drives.{name}.bands: expected increasing ratios "
                f"available < elevated < triggered < crisis < emergency, got {pairs}"
            )
        normalized[upper] = drive
    cfg.drives = normalized
    quiet = cfg.sidecar.quiet_hours
    if quiet is not None and quiet[0] == quiet[1]:
        raise ConfigError(
            f"{source}: sidecar.quiet_hours: expected two different hours [start, end], "
            f"got [{quiet[0]}, {quiet[1]}]"
        )


def parse_config(data: bytes, source: str) -> Config:
    """Parse config bytes: JSON if they look like JSON or *source* ends in .json, else TOML."""
    stripped = data.lstrip()
    is_json = source.endswith(".json") or stripped.startswith(b"{")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    if is_json:
        try:
            raw = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise ConfigError(f"{source}: invalid JSON: {exc}") from None
    else:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    return _build(raw, source)


def load_config(path: Path | None, *, required: bool) -> Config:
    """Load *path*; with no file there and ``required=False``, the built-in defaults."""
    if path is None or (not required and not path.exists()):
        if path is not None:
            log.info("no config at %s; using the built-in default drives", path)
        return default_config()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_config(data, str(path))
