"""Drive configuration: native TOML, emergence's drives.json as-is, or built-in defaults.

Everything is decoded into msgspec Structs, so a wrong type, a missing key or an
out-of-range number is caught in one place and reported as ONE line naming the
file, the key and what was expected (a ConfigError, never a traceback).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import tomllib
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec

from agentctx._core.errors import ConfigError, StoreError
from agentctx._core.files import read_file
from agentctx._core.framing import DEFAULT_MAX_FRAME, MAX_FRAME_LIMIT
from agentctx._core.protocol import Band, DriveView, State, drive_key, encode_message, explain

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
BAND_KEYS: Final = ("bands", "thresholds")  # emergence spells them "thresholds"
DEFAULT_SOURCE: Final = "built-in defaults"  # Config.source of the built-in drives
MAX_CONFIG_FILE: Final = 16 << 20  # a config is a few KiB; never slurp something absurd
_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")

# Bounded floats: the bounds also reject NaN and infinity, which TOML can spell.
Positive = Annotated[float, msgspec.Meta(gt=0.0, le=1e9)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0, le=1e9)]
Hour = Annotated[int, msgspec.Meta(ge=0, le=23)]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Ratio = Annotated[float, msgspec.Meta(gt=0.0, le=100.0)]
Seconds = Annotated[float, msgspec.Meta(gt=0.0, le=7 * 86400.0)]
# A command as argv: a program and its arguments, never a shell string
Argv = Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]], msgspec.Meta(min_length=1)]


class BandRatios(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Per-drive band overrides; a key that is not a band name is an error."""

    available: Ratio | None = None
    elevated: Ratio | None = None
    triggered: Ratio | None = None
    crisis: Ratio | None = None
    emergency: Ratio | None = None


class DriveConfig(msgspec.Struct, kw_only=True):
    """One drive. In emergence's drives.json unknown keys are ignored (it has many of
    its own); in our TOML they are typos, refused (see `_StrictDrive`)."""

    threshold: Positive
    rate_per_hour: NonNegative = 0.0
    description: str = ""
    prompt: str = ""
    activity_driven: bool = False
    bands: BandRatios | None = None
    # emergence spells the per-drive band overrides "thresholds"
    thresholds: BandRatios | None = None
    # A trigger (the ratio rising to 1) fires at most once per cooldown
    cooldown_minutes: Annotated[float, msgspec.Meta(ge=0.0, le=525_600.0)] = 30.0
    # argv run when a trigger fires; None: the [actions] default (if any)
    on_trigger: Argv | None = None
    timeout_s: Seconds | None = None  # None: the [actions] default

    def band_ratios(self) -> dict[str, float]:
        merged = dict(DEFAULT_BANDS)
        for source in (self.thresholds, self.bands):
            if source is not None:
                merged.update(
                    (k, v) for k, v in msgspec.structs.asdict(source).items() if v is not None
                )
        return merged


class _StrictDrive(DriveConfig, forbid_unknown_fields=True):
    """A drive from a native TOML file: `rate_per_hr = 2` is an error, not a silent 0/h."""


class Actions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The `[actions]` table: what a fired trigger runs when its drive says nothing."""

    on_trigger: Argv | None = None
    timeout_s: Seconds = 300.0  # then SIGTERM to its process group, SIGKILL 10 s later


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The `[sidecar]` table; every key optional. Typos are errors, not silent defaults."""

    tick_interval: Annotated[float, msgspec.Meta(ge=0.001, le=86400.0)] = 1.0
    max_pressure_ratio: Annotated[float, msgspec.Meta(ge=1.0, le=100.0)] = 1.5
    quiet_hours: tuple[Hour, Hour] | None = None
    quiet_rate_factor: Fraction = 0.25
    satisfied_hold_s: Annotated[float, msgspec.Meta(ge=0.0, le=86400.0)] = 60.0
    save_interval: Annotated[float, msgspec.Meta(ge=1.0, le=86400.0)] = 60.0
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=1024, le=MAX_FRAME_LIMIT)] = DEFAULT_MAX_FRAME
    max_clients: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 512
    client_send_timeout: Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)] = 10.0


class Config(msgspec.Struct, kw_only=True):
    drives: dict[str, DriveConfig]
    sidecar: Settings = msgspec.field(default_factory=Settings)
    actions: Actions = msgspec.field(default_factory=Actions)

    def action(self, name: str) -> tuple[list[str] | None, float]:
        """The command a fired trigger of drive *name* runs (None: none) and its timeout."""
        drive = self.drives[name]
        argv = drive.on_trigger if drive.on_trigger is not None else self.actions.on_trigger
        timeout = drive.timeout_s if drive.timeout_s is not None else self.actions.timeout_s
        return argv, timeout

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


SECTIONS: Final = ("drives", "sidecar", "actions")  # a TOML config's top-level tables


def default_config() -> Config:
    """The built-in drives, used when there is no config file at all."""
    return _build({"drives": _DEFAULT_DRIVES}, DEFAULT_SOURCE)


def _convert(value: Any, typ: type[Any], source: str, key: str) -> Any:
    """msgspec.convert, with its error rewritten as `file: key: expected ...`."""
    try:
        return msgspec.convert(value, typ, strict=True)
    except msgspec.ValidationError as exc:
        where, what = explain(exc)
        full = ".".join(filter(None, (key, where)))
        if what.startswith("unknown key") and full.rpartition(".")[0].endswith(BAND_KEYS):
            what = f"unknown band (expected one of {', '.join(BAND_ORDER)})"
        raise ConfigError(f"{source}: {full}: {what}") from None


def _build(raw: Any, source: str, strict: bool = True) -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a table/object at the top level")
    if strict:  # a misspelt section ([sidcar], [drive.X]) would silently be left out
        for key in raw:
            if key not in SECTIONS:
                raise ConfigError(
                    f"{source}: {key}: unknown section (expected {', '.join(SECTIONS)}; "
                    "check the spelling)"
                )
    drives_raw = raw.get("drives")
    if not isinstance(drives_raw, dict):
        raise ConfigError(f"{source}: drives: expected a table of drives, e.g. [drives.CARE]")
    kind = _StrictDrive if strict else DriveConfig
    drives = {
        str(name): _convert(spec, kind, source, f"drives.{name}")
        for name, spec in drives_raw.items()
    }
    settings = _convert(raw.get("sidecar", {}), Settings, source, "sidecar")
    actions = _convert(raw.get("actions", {}), Actions, source, "actions")
    cfg = Config(drives=drives, sidecar=settings, actions=actions, source=source)
    _check(cfg, source)
    _check_size(cfg, source)
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
    for where, argv in [("actions.on_trigger", cfg.actions.on_trigger)] + [
        (f"drives.{n}.on_trigger", d.on_trigger) for n, d in normalized.items()
    ]:
        if argv is not None and (problem := _not_runnable(argv[0])):
            raise ConfigError(f"{source}: {where}: {problem}")
    quiet = cfg.sidecar.quiet_hours
    if quiet is not None and quiet[0] == quiet[1]:
        raise ConfigError(
            f"{source}: sidecar.quiet_hours: expected two different hours [start, end], "
            f"got [{quiet[0]}, {quiet[1]}]"
        )


def _not_runnable(program: str) -> str | None:
    """Why *program* could not be run as a command (None: it can). Checked when the config
    is read, not when a trigger fires hours later."""
    if "/" in program:
        if not os.path.isfile(program):
            return f"{program}: no such file"
        if not os.access(program, os.X_OK):
            return f"{program}: not executable"
        return None
    if shutil.which(program) is None:
        path = os.environ.get("PATH", "")
        return f"program {program!r} not found on PATH ({path}); give its absolute path"
    return None


def _check_size(cfg: Config, source: str) -> None:
    """Refuse a config whose state would not fit in one frame: every client would then
    be cut off. Measured on the largest state it can publish (every timestamp set,
    numbers at their longest)."""
    stamp = "2000-01-01T00:00:00.000000+00:00"
    long_float = -1.2345678901234567e-300  # as many characters as a float can take
    views = {
        name: DriveView(
            pressure=long_float,
            threshold=drive.threshold,
            status="satisfied",
            description=drive.description,
            last_triggered=stamp,
            ratio=long_float,
            band="emergency",
            rate_per_hour=drive.rate_per_hour,
            max_pressure=long_float,
            activity_driven=drive.activity_driven,
            last_satisfied=stamp,
            last_event=stamp,
            prompt=drive.prompt,
        )
        for name, drive in cfg.drives.items()
    }
    state = State(
        version="1.0",
        last_tick=stamp,
        seq=2**63 - 1,
        boot_id="0" * 32,
        tick_ts=long_float,
        tick_interval=long_float,
        drives=views,
        id=2**63 - 1,
    )
    size = len(encode_message(state))
    limit = cfg.sidecar.max_frame_bytes
    if size > limit:
        raise ConfigError(
            f"{source}: drives: a state of these {len(views)} drives takes up to {size} bytes, "
            f"over sidecar.max_frame_bytes = {limit}: shorten descriptions and prompts, "
            "or raise max_frame_bytes"
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
    return _build(raw, source, strict=not is_json)


def load_config(path: Path | None, *, required: bool) -> Config:
    """Load *path*; with no file there and ``required=False``, the built-in defaults."""
    if path is None or (not required and not path.exists()):
        if path is not None:
            log.info("no config at %s; using the built-in default drives", path)
        return default_config()
    try:
        data = read_file(path, MAX_CONFIG_FILE)
    except StoreError as exc:  # unreadable, a FIFO, a directory, too large...
        raise ConfigError(str(exc)) from None
    if data is None:
        raise ConfigError(f"{path}: no such file")
    return parse_config(data, str(path))
