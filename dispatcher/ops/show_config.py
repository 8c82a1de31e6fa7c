"""`dispatcher check-config PATH`: the effective config (file, environment overrides and
defaults) as TOML or JSON, with secrets masked.

A secret is a field declared `repr=False` (the providers' `api_key`, `redis.url`, ...) and any
field named like a key, secret, password or token. A URL, secret or not, is shown with its
password masked (`redis://:pw@host`, `?password=pw`), the rest being no secret. A secret read
from a file (`api_key_file`) is shown, masked, under its own name (`api_key`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from dispatcher.config import Settings

MASK = "********"
_SECRET_NAME = re.compile(r"(^|_)(api_key|key|secret|password|token)$")
_QUERY_PASSWORD = re.compile(r"((?:^|&)password=)[^&]*")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def effective(settings: Settings) -> dict[str, Any]:
    """Every section as plain data, secrets masked; providers as a list of tables."""
    doc: dict[str, Any] = {
        f.name: _table(getattr(settings, f.name))
        for f in dataclasses.fields(settings)
        if f.name != "providers"
    }
    doc["providers"] = [_provider(p) for p in settings.providers]
    return doc


def _provider(provider: Any) -> dict[str, Any]:
    table = _table(provider)
    table.pop("options")
    table.update(_table(provider.options))
    return table


def _table(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[f.name] = _table(value)
        elif isinstance(value, str) and _URL.match(value):
            out[f.name] = _mask_url(value)
        elif value is not None and (not f.repr or _SECRET_NAME.search(f.name)):
            out[f.name] = MASK
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    query = _QUERY_PASSWORD.sub(rf"\1{MASK}", parts.query)
    parts = parts._replace(query=query)
    if parts.password is None:
        return urlunsplit(parts)
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}{port}"))


def render(doc: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
    lines: list[str] = []
    for name, table in doc.items():
        if name == "providers":
            continue
        lines += [f"[{name}]", *_pairs(table), ""]
    for provider in doc["providers"]:
        breaker = provider.pop("breaker")
        lines += ["[[providers]]", *_pairs(provider), *_pairs(breaker), ""]
    return "\n".join(lines).rstrip() + "\n"


def _pairs(table: dict[str, Any]) -> list[str]:
    return [f"{key} = {_value(value)}" for key, value in table.items() if value is not None]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | list):
        return orjson.dumps(value).decode()  # a JSON string or list of strings is valid TOML
    return repr(value)
