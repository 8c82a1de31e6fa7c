"""A provider's own settings: each provider module declares a frozen dataclass of the keys its
`[[providers]]` entry may carry, and `read_options` builds one from that raw table (environment
overrides already applied, so any value may be a string)::

    unknown key                   ProviderConfigError(key, "unknown option; valid options: ...")
    field without a default       absent, None or ""  ->  ProviderConfigError(key, "is required")
    optional field (`X | None`)   ""  ->  None
    field with a default          ""  ->  the default
    other values                  converted to the field's type by `coerce`, or an error naming
                                  the key; range and format checks live in `__post_init__`

A secret is a field with `repr=False`: its value appears in no repr and no error message.
It may instead be read from a file, named by the key with `_file` appended (`api_key_file =
"/run/secrets/sendgrid"`): read once, the trailing newline stripped; setting both forms, or a
file that is missing, unreadable or empty, raises an error naming the key (`secret_files`).
The config loader converts its own sections with the same `coerce` and `secret_files`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, get_args, get_type_hints

from providers.base import ProviderConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

OptionsT = TypeVar("OptionsT", bound="DataclassInstance")
T = TypeVar("T")
FILE_SUFFIX = "_file"  # `api_key_file` names the file holding the secret `api_key`


def read_options(cls: type[OptionsT], raw: Mapping[str, object]) -> OptionsT:
    """`cls` built from `raw`; a key that is unknown, missing or invalid raises
    `ProviderConfigError` naming it."""
    raw = secret_files(cls, raw)
    declared = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(declared))
    if unknown:
        valid = ", ".join(sorted(valid_keys(cls))) or "none"
        raise ProviderConfigError(unknown[0], f"unknown option; valid options: {valid}")
    hints = get_type_hints(cls)
    values: dict[str, object] = {}
    for name, spec in declared.items():
        value = raw.get(name)
        unset = value is None or value == ""
        if unset and _required(spec):
            raise ProviderConfigError(name, "is required")
        if unset and not _optional(hints[name]):
            continue  # the default
        try:
            values[name] = coerce(value, hints[name], secret=not spec.repr)
        except ValueError as exc:
            raise ProviderConfigError(name, str(exc)) from None
    return cls(**values)


def secret_files(cls: type[DataclassInstance], raw: Mapping[str, object]) -> dict[str, object]:
    """`raw` with each secret field of `cls` given as `<field>_file` replaced by the file's
    text; raises `ProviderConfigError` naming the `_file` key (or both keys), never the text."""
    resolved = dict(raw)
    for spec in dataclasses.fields(cls):
        file_key = f"{spec.name}{FILE_SUFFIX}"
        if spec.repr or file_key not in resolved:
            continue
        path = resolved.pop(file_key)
        if resolved.get(spec.name) not in (None, ""):
            raise ProviderConfigError(spec.name, f"set either {spec.name} or {file_key}, not both")
        try:
            resolved[spec.name] = read_secret_file(path)
        except ValueError as exc:
            raise ProviderConfigError(file_key, str(exc)) from None
    return resolved


def valid_keys(cls: type[DataclassInstance]) -> list[str]:
    """The keys a table of `cls` may hold: its fields, and `<field>_file` for each secret."""
    specs = dataclasses.fields(cls)
    return [f.name for f in specs] + [f"{f.name}{FILE_SUFFIX}" for f in specs if not f.repr]


def read_secret_file(path: object) -> str:
    """The text of the file at `path`, without its trailing newline; ValueError saying why not
    (the path is no secret, the text is)."""
    if not isinstance(path, str) or not path:
        raise ValueError("must be a file path")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    text = text.rstrip("\r\n")
    if not text.strip():
        raise ValueError(f"{path} is empty")
    return text


def expect(options: object, cls: type[T]) -> T:
    """`options` if it is a `cls` (a provider's `open` narrows what the registry hands it)."""
    if not isinstance(options, cls):
        raise ProviderConfigError(
            "type", f"expects {cls.__name__} options, not {type(options).__name__}"
        )
    return options


def coerce(value: object, hint: object, *, secret: bool = False) -> object:
    """`value`, from TOML or an environment string, as the type `hint` (bool, int, float or str,
    or one of them `| None`). Raises ValueError whose message is the reason; a `secret` value is
    not quoted in it."""
    optional = _optional(hint)
    base = next((a for a in get_args(hint) if a is not type(None)), hint)
    if value is None or (optional and value == ""):
        if optional:
            return None
        raise ValueError("must not be empty")
    name = getattr(base, "__name__", str(base))
    shown = "the value" if secret else repr(value)
    try:
        if base is bool:
            return _to_bool(value)
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(str(value))
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            return float(str(value))
    except ValueError:
        raise ValueError(f"{shown} is not a valid {name}") from None
    if not isinstance(value, str):
        raise ValueError(f"{shown} must be a string")
    return value


def _required(spec: dataclasses.Field[object]) -> bool:
    return spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING


def _optional(hint: object) -> bool:
    return type(None) in get_args(hint)


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)
