"""Loading: the file's TOML, ``OMITAMA_NOTIFY_<SECTION>__<KEY>`` overrides laid over it,
and the first refusal turned into one :class:`~worker.errors.ConfigError` naming the key
and where its value came from."""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from .root import Settings
from .source import ENV_FILE, SettingsSource, find_settings

ENV_PREFIX = "OMITAMA_NOTIFY_"


def _apply_env(data: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    """Overlay OMITAMA_NOTIFY_A__B[__C] variables; returns key → variable name."""
    origin: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_FILE:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        if len(parts) < 2 or not all(parts):
            raise ConfigError(name, "expected OMITAMA_NOTIFY_<SECTION>__<KEY>")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(name, f"{part} is not a section")
            node = child
        node[parts[-1]] = value
        origin[".".join(parts)] = name
    return origin


def _key_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2:
        return f"[{'.'.join(parts[:-1])}] {parts[-1]}"
    return parts[0] if parts else "?"


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    src = SettingsSource(path, path.parent, path.parent, "given") if path else find_settings(env)
    path = src.path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "settings file not found (set OMITAMA_NOTIFY_SETTINGS)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), f"not valid TOML: {e}") from None
    origin = _apply_env(data, env)
    data.update(base_dir=src.data_dir, config_dir=src.config_dir, source=src.describe())
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = _key_name(err["loc"])
        dotted = ".".join(str(p) for p in err["loc"])
        source = f" (from {origin[dotted]})" if dotted in origin else f" (in {path.name})"
        msg = "is missing" if err["type"] == "missing" else (
            "is not a known setting" if err["type"] == "extra_forbidden" else err["msg"])
        raise ConfigError(key, msg + source) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded on first use."""
    return load_settings()
