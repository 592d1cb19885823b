"""The settings in force and where each came from (`newsletter config`), and the refusal to
mail under `init`'s example identity (`send`, `digest`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter import config
from newsletter.config import Settings


@dataclass(frozen=True)
class SettingInForce:
    """One row of `newsletter config`: a key, its value as shown, and where it came from."""

    key: str  # as in newsletter.toml
    env: str
    value: str  # a secret is only "set" or "unset"
    source: str  # "file", "environment", "option" or "default"
    secret: bool

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "env": self.env, "value": self.value, "source": self.source}


def settings_in_force(
    settings: Settings,
    path: Path,
    env: Mapping[str, str] | None = None,
    *,
    db_option: bool = False,
) -> list[SettingInForce]:
    """Every setting with the value in force and its source, in the order of KEYS.

    The precedence is load_settings' own: default, then the file, then the environment
    (then --db for the database). Secret values never leave this function.
    """
    env = os.environ if env is None else env
    data = config.read_toml(path) if path.exists() else {}
    rows = []
    for key in config.KEYS:
        source = "default"
        if config.lookup(data, key.toml) is not None:
            source = "file"
        if env.get(key.env, "") != "":
            source = "environment"
        if key.attr == "db" and db_option:
            source = "option"
        value = getattr(settings, key.attr)
        secret = key.attr in config.SECRETS
        if secret:
            shown = "set" if value else "unset"
        elif key.attr == "digest_feeds":
            shown = "; ".join(f"{slug}: {' '.join(feeds)}" for slug, feeds in value)
        elif isinstance(value, bool):
            shown = "true" if value else "false"  # as it is written in the file
        elif isinstance(value, tuple):
            shown = ", ".join(value)
        else:
            shown = "" if value is None else str(value)
        rows.append(SettingInForce(key.toml, key.env, shown, source, secret))
    return rows
