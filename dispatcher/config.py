"""Settings: parsed once at start-up from TOML plus `DISPATCHER_<SECTION>__<KEY>` overrides,
validated, frozen and passed down. Every error names the key it is about.

A secret field (declared `repr=False`) may be given as a file instead, `<key>_file`, in TOML or
the environment alike (`providers.options.secret_files`); errors never quote a secret.

Provider keys are overridden by provider name: `DISPATCHER_PROVIDERS__<NAME>__<KEY>`, with the
name upper-cased and `-` written `_` (for example `DISPATCHER_PROVIDERS__SENDGRID__API_KEY`).

A `[[providers]]` entry's common keys are parsed here (`ProviderSettings`); the rest go to the
provider registry (`providers.parse_options`), whose module for that `type` parses and checks
them into `ProviderSettings.options`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, get_type_hints

from dispatcher.config_checks import check
from dispatcher.config_feedback import SuppressionSettings, WebhookSettings, problems
from dispatcher.config_sections import (
    ApiSettings,
    BreakerSettings,
    ConfigError,
    DispatchSettings,
    LogSettings,
    MetricsSettings,
    ProviderSettings,
    QueueSettings,
    RedisSettings,
    RoutingSettings,
    Settings,
)
from providers import ProviderConfigError, parse_options
from providers.options import coerce, secret_files, valid_keys

__all__ = [  # the settings types live in dispatcher.config_sections; import them from here
    "ApiSettings",
    "BreakerSettings",
    "ConfigError",
    "DispatchSettings",
    "LogSettings",
    "MetricsSettings",
    "ProviderSettings",
    "QueueSettings",
    "RedisSettings",
    "RoutingSettings",
    "Settings",
    "SuppressionSettings",
    "WebhookSettings",
    "apply_env",
    "load",
    "parse",
]
ENV_PREFIX = "DISPATCHER_"
# Keys that were renamed: a setting under the old name is refused with the new one.
_RENAMED = {
    "dispatch.retry_ambiguous": 'renamed: use dispatch.on_ambiguous = "retry_same" '
    '(was true), "fail_over" or "error" (was false)',
}


_BREAKER_KEYS = frozenset(f.name for f in fields(BreakerSettings))


_COMMON_PROVIDER_KEYS = frozenset(
    f.name for f in fields(ProviderSettings) if f.name not in ("options", "breaker")
)


_SECTIONS: dict[str, type[Any]] = {
    "queue": QueueSettings,
    "redis": RedisSettings,
    "dispatch": DispatchSettings,
    "routing": RoutingSettings,
    "breaker": BreakerSettings,
    "log": LogSettings,
    "api": ApiSettings,
    "webhooks": WebhookSettings,
    "suppression": SuppressionSettings,
    "metrics": MetricsSettings,
}


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read `path` (or `$DISPATCHER_CONFIG`), apply env overrides, validate, freeze."""
    env = os.environ if environ is None else environ
    source = path or env.get(f"{ENV_PREFIX}CONFIG")
    doc: dict[str, Any] = {}
    if source:
        try:
            doc = tomllib.loads(Path(source).read_text())
        except OSError as exc:
            raise ConfigError("config", f"cannot read {source}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{source} is not valid TOML: {exc}") from None
    return parse(apply_env(doc, env))


def apply_env(doc: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Overlay `DISPATCHER_<SECTION>__<KEY>` values (strings; `parse` converts them)."""
    merged: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
    providers: list[dict[str, Any]] = [
        dict(p) for p in doc.get("providers", []) if isinstance(p, dict)
    ]
    if "providers" in doc or any(
        v.lower().startswith(f"{ENV_PREFIX}providers__".lower()) for v in env
    ):
        merged["providers"] = providers
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var == f"{ENV_PREFIX}CONFIG":
            continue
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        if parts[0] == "providers" and len(parts) == 3:
            _provider_entry(providers, parts[1], var)[parts[2]] = value
        elif len(parts) == 2 and parts[0] in _SECTIONS:
            section = merged.setdefault(parts[0], {})
            if not isinstance(section, dict):
                raise ConfigError(parts[0], "must be a table")
            section[parts[1]] = value
        else:
            raise ConfigError(
                var,
                "unknown environment override; use "
                "DISPATCHER_<SECTION>__<KEY> or "
                "DISPATCHER_PROVIDERS__<NAME>__<KEY>",
            )
    return merged


def parse(doc: Mapping[str, Any]) -> Settings:
    unknown = sorted(set(doc) - {*_SECTIONS, "providers"})
    if unknown:
        raise ConfigError(
            unknown[0], f"unknown section; valid: {', '.join([*_SECTIONS, 'providers'])}"
        )
    if "queue" not in doc:
        raise ConfigError("queue.url", "is required")
    for key, reason in _RENAMED.items():
        section, name = key.split(".")
        if isinstance(doc.get(section), dict) and name in doc[section]:
            raise ConfigError(key, reason)
    sections = {name: _build(cls, doc.get(name, {}), name) for name, cls in _SECTIONS.items()}
    providers = _providers(doc.get("providers", []), sections["breaker"])
    api: ApiSettings = sections["api"]
    if api.retention_days == 0:
        sections["api"] = replace(api, retention_days=sections["dispatch"].record_ttl_days)
    settings = Settings(providers=providers, **sections)
    check(settings)
    for key, reason in problems(settings.webhooks):
        raise ConfigError(key, reason)
    return settings


def _provider_entry(entries: list[dict[str, Any]], env_name: str, var: str) -> dict[str, Any]:
    for entry in entries:
        if str(entry.get("name", "")).lower().replace("-", "_") == env_name:
            return entry
    raise ConfigError(var, f"no [[providers]] entry is named {env_name!r}")


def _providers(raw: object, breaker: BreakerSettings) -> tuple[ProviderSettings, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("providers", "at least one [[providers]] entry is required")
    built: list[ProviderSettings] = []
    for index, entry in enumerate(raw):
        where = f"providers[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(where, "must be a table")
        common = {k: v for k, v in entry.items() if k in _COMMON_PROVIDER_KEYS}
        tuning = {k: v for k, v in entry.items() if k in _BREAKER_KEYS}
        own = {k: v for k, v in entry.items() if k not in common and k not in tuning}
        options = _provider_options(entry.get("type"), own, where)
        tuned = _overlay(breaker, tuning, where)
        built.append(_build(ProviderSettings, common, where, options=options, breaker=tuned))
    names = [p.name for p in built]
    for index, name in enumerate(names):
        if not name or names.index(name) != index:
            raise ConfigError(f"providers[{index}].name", f"{name!r} must be non-empty and unique")
    return tuple(built)


def _provider_options(kind: object, own: dict[str, Any], where: str) -> object:
    """The options the registry parses for a provider of type `kind`, errors named in full."""
    try:
        return parse_options(kind, own)
    except ProviderConfigError as exc:
        reason = exc.reason if exc.key == "type" else f"{exc.reason} ({kind} provider)"
        raise ConfigError(f"{where}.{exc.key}", reason) from None


def _overlay(base: BreakerSettings, raw: dict[str, Any], where: str) -> BreakerSettings:
    """`base` with the keys a provider sets itself."""
    hints = get_type_hints(BreakerSettings)
    values: dict[str, Any] = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items()}
    return replace(base, **values)


def _build(cls: type[Any], raw: object, where: str, **given: object) -> Any:
    """`cls` from the table `raw` (keys named `where.key` in errors) and the values `given`."""
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be a table")
    try:
        raw = secret_files(cls, raw)
    except ProviderConfigError as exc:
        raise ConfigError(f"{where}.{exc.key}", exc.reason) from None
    hints = get_type_hints(cls)
    secret = {f.name for f in fields(cls) if not f.repr}
    names = {f.name for f in fields(cls)} - set(given)
    unknown = sorted(set(raw) - names)
    if unknown:
        valid = ", ".join(sorted(set(valid_keys(cls)) - set(given)))
        raise ConfigError(f"{where}.{unknown[0]}", f"unknown key; valid: {valid}")
    values = {
        key: _coerce(value, hints[key], f"{where}.{key}", secret=key in secret)
        for key, value in raw.items()
    }
    try:
        return cls(**values, **given)
    except TypeError:
        missing = next(f.name for f in fields(cls) if f.name not in values and f.name not in given)
        raise ConfigError(f"{where}.{missing}", "is required") from None


def _coerce(value: object, hint: object, key: str, *, secret: bool = False) -> object:
    """Convert TOML or env-string values to the field's type, or say which key is wrong (a
    `secret` value unquoted)."""
    try:
        return coerce(value, hint, secret=secret)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
