"""Config: TOML, emergence drives.json as-is, defaults, and one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support import EMERGENCE_DRIVES

from agentctx._core.config import default_config, load_config, parse_config
from agentctx._core.errors import ConfigError


def test_defaults() -> None:
    cfg = default_config()
    assert {
        n: (d.threshold, d.rate_per_hour, d.activity_driven) for n, d in cfg.drives.items()
    } == {
        "CARE": (20, 2.0, False),
        "MAINTENANCE": (25, 1.5, False),
        "REST": (30, 0.0, True),
        "WANDER": (20, 1.0, False),
    }
    assert cfg.sidecar.tick_interval == 1.0 and cfg.sidecar.max_pressure_ratio == 1.5
    assert cfg.sidecar.quiet_hours is None and cfg.sidecar.quiet_rate_factor == 0.25


def test_native_toml(tmp_path: Path) -> None:
    path = tmp_path / "drives.toml"
    path.write_text(
        "[sidecar]\ntick_interval = 0.5\nquiet_hours = [23, 7]\n"
        "[drives.care]\nthreshold = 20\nrate_per_hour = 2.0\n"
        'description = "Attend."\nbands = { crisis = 1.4 }\n'
    )
    cfg = load_config(path, required=True)
    assert list(cfg.drives) == ["CARE"]
    assert cfg.drives["CARE"].band_ratios()["crisis"] == 1.4
    assert cfg.sidecar.quiet_hours == (23, 7)


def test_emergence_drives_json_as_is(tmp_path: Path) -> None:
    path = tmp_path / "drives.json"
    path.write_text(json.dumps(EMERGENCE_DRIVES))
    cfg = load_config(path, required=True)
    assert set(cfg.drives) == {"CARE", "REST", "WANDER"}
    assert cfg.drives["CARE"].threshold == 25.0
    assert cfg.drives["REST"].activity_driven
    assert cfg.drives["REST"].band_ratios()["elevated"] == 0.6


def test_missing_optional_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path / "none.toml", required=False).source == "built-in defaults"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[drives.CARE]\nthreshold = 0", "drives.CARE.threshold: expected a number > 0.0"),
        ("[drives.CARE]\nthreshold = -3", "drives.CARE.threshold"),
        ('[drives.CARE]\nthreshold = "20"', "drives.CARE.threshold: expected a number, got str"),
        (
            "[drives.CARE]\nthreshold = 20\nrate_per_hr = 2.0",
            "drives.CARE.rate_per_hr: unknown key (check the spelling)",
        ),
        (
            "[drives.CARE]\nthreshold = 20\nprompt = '" + "x" * (1 << 20) + "'",
            "drives: a state of these 1 drives takes up to",
        ),
        ("[drives.CARE]\nrate_per_hour = 1", "drives.CARE.threshold: missing (required)"),
        (
            "[drives.CARE]\nthreshold = 1\nbands = { huge = 3 }",
            "drives.CARE.bands.huge: unknown band",
        ),
        ("[drives.CARE]\nthreshold = 1\nbands = { elevated = 1.2 }", "expected increasing ratios"),
        ("[drives.CARE]\nthreshold = nan", "drives.CARE.threshold"),
        ("[drives.CARE]\nthreshold = inf", "drives.CARE.threshold"),
        (
            "[sidecar]\ntick_intervall = 1\n[drives.A]\nthreshold = 1",
            "sidecar.tick_intervall: unknown key",
        ),
        ("[sidecar]\nquiet_hours = [23, 24]\n[drives.A]\nthreshold = 1", "sidecar.quiet_hours"),
        ("[sidecar]\nquiet_hours = [5, 5]\n[drives.A]\nthreshold = 1", "two different hours"),
        ("[drives.A]\nthreshold = 1\nactivity_driven = 'yes'", "drives.A.activity_driven"),
        ("[drives.bad-name]\nthreshold = 1", "drives.bad-name: expected a name"),
        ("[drives]\n", "drives: expected at least one drive"),
        ("[sidecar]\n", "drives: expected a table of drives"),
        ("[drives.A\nthreshold = 1", "invalid TOML"),
        (
            "[sidcar]\ntick_interval = 5\n[drives.A]\nthreshold = 1",
            "sidcar: unknown section (expected drives, sidecar, actions; check the spelling)",
        ),
        ("[drives.A]\nthreshold = 1\n[drive.B]\nthreshold = 1", "drive: unknown section"),
        ("foo = 1\n[drives.A]\nthreshold = 1", "foo: unknown section"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, required=True)
    message = str(info.value)
    assert message.startswith(str(path) + ": ")
    assert expected in message
    assert "\n" not in message


def test_bad_json_and_unreadable(tmp_path: Path) -> None:
    bad = tmp_path / "drives.json"
    bad.write_text('{"drives": {"CARE": {"threshold": 20,}}}')
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_config(bad, required=True)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml", required=True)
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):  # and no hang
        load_config(fifo, required=True)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary, required=True)


def test_parse_is_by_content_too() -> None:
    cfg = parse_config(b'{"drives": {"A": {"threshold": 2}}}', "stdin")
    assert cfg.drives["A"].threshold == 2


def test_drive_names_fold_case_over_ascii_only() -> None:
    assert list(parse_config(b"[drives.care]\nthreshold = 1", "x.toml").drives) == ["CARE"]
    with pytest.raises(ConfigError, match="expected a name"):  # U+017F would upper to "S"
        parse_config('[drives."ca\u017fe"]\nthreshold = 1'.encode(), "x.toml")


def test_state_size_follows_max_frame_bytes() -> None:
    big = "[sidecar]\nmax_frame_bytes = 4194304\n[drives.A]\nthreshold = 1\nprompt = '"
    cfg = parse_config((big + "x" * (2 << 20) + "'").encode(), "x.toml")  # fits in 4 MiB
    assert len(cfg.drives["A"].prompt) == 2 << 20
