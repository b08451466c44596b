"""Run configs on disk: the JSON / TOML table a config file holds, `--set KEY=VALUE`
overrides on it, and the check that names keys a config dataclass does not have. Shared by
training, RL and data curation, so it sits below all three."""

from __future__ import annotations

import copy
import dataclasses
import json
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from duet.errors import ConfigError


def read_config_file(path: str | Path, what: str) -> dict[str, Any]:
    """The table a .json or .toml run config holds; ConfigError names a missing file, bad
    syntax or a file that holds something else (`what` names the kind of config)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} file not found: {path}")
    try:
        text = path.read_text()
        d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise ConfigError(f"{path} is not valid {kind}: {e}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path} must hold a table/object of {what} keys")
    return d


def apply_overrides(d: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """`d` with each `KEY=VALUE` set (`duet train --set`), so that one checked-in config
    serves its variants: KEY is a dotted path into tables (`model.audio.rope_time_scale`),
    VALUE is JSON (`1.0`, `false`, `["a", "b"]`), or a plain string when it is not JSON."""
    out = copy.deepcopy(d)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. steps=100 or "
                              "model.audio.rope_time_scale=1.0)")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        *tables, last = key.split(".")
        table = out
        for i, name in enumerate(tables):
            table = table.setdefault(name, {})
            if not isinstance(table, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(tables[:i + 1])} is not a table")
        table[last] = value
    return out


def check_keys(cls: type, d: dict[str, Any], what: str) -> None:
    """ConfigError naming every key of `d` that the dataclass `cls` has no field for."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown {what} key(s) {unknown}; allowed: {sorted(known)}")
