"""One contract over every registered provider type, through the registry and the config loader.

Each type: the registry lists it; its options parse from a minimal entry into a frozen object that
`ProviderSettings.options` holds; a missing required key and an unknown key are named (in full,
`providers[1].<key>`, through the config); every option key can come from the environment;
secrets stay out of every repr and error message; and it opens as a `Provider`.

A new provider type adds one line to `MINIMAL`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import aiohttp
import pytest

from dispatcher.config import ConfigError, Settings, apply_env, parse
from providers import PROVIDER_TYPES, Provider, ProviderConfigError, open_provider, parse_options

# The smallest valid options of each type; a secret's value starts with SECRET, and is unique.
SECRET = "s3cret-"
MINIMAL: dict[str, dict[str, object]] = {
    "sendgrid": {"api_key": "s3cret-sendgrid-key"},
    "mailgun": {"api_key": "s3cret-mailgun-key", "domain": "mg.example.com"},
    "ses": {},
    "simulated": {},
}
TYPES = sorted(MINIMAL)
NAME = "under-test"  # its environment overrides are DISPATCHER_PROVIDERS__UNDER_TEST__<KEY>


def option_fields(kind: str) -> tuple[dataclasses.Field[Any], ...]:
    options = parse_options(kind, MINIMAL[kind])
    assert dataclasses.is_dataclass(options)
    return dataclasses.fields(options)


def required(kind: str) -> list[str]:
    return [
        f.name
        for f in option_fields(kind)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]


def secrets(kind: str) -> list[str]:
    return [k for k, v in MINIMAL[kind].items() if str(v).startswith(SECRET)]


def load(kind: str, options: dict[str, object], environ: dict[str, str] | None = None) -> Settings:
    """Settings whose providers[1] is a `kind` provider with `options` (providers[0] is a dry
    run, so that errors must name the entry)."""
    doc = {
        "queue": {"url": "http://127.0.0.1:1/000000000000/mail"},
        "providers": [
            {"name": "first", "type": "simulated"},
            {"name": NAME, "type": kind, **options},
        ],
    }
    return parse(apply_env(doc, environ or {}))


def env_var(key: str) -> str:
    return f"DISPATCHER_PROVIDERS__{NAME.upper().replace('-', '_')}__{key.upper()}"


def test_the_registry_lists_every_type_under_contract() -> None:
    assert sorted(PROVIDER_TYPES) == TYPES


@pytest.mark.parametrize("kind", TYPES)
def test_options_parse_from_a_minimal_entry_and_are_frozen(kind: str) -> None:
    options = parse_options(kind, MINIMAL[kind])
    [first, *_] = option_fields(kind)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(options, first.name, None)
    settings = load(kind, MINIMAL[kind]).provider(NAME)
    assert (settings.type, settings.options) == (kind, options)


@pytest.mark.parametrize("kind", TYPES)
def test_a_missing_required_key_is_named(kind: str) -> None:
    for key in required(kind):
        for missing in (
            {k: v for k, v in MINIMAL[kind].items() if k != key},
            {**MINIMAL[kind], key: ""},
        ):
            with pytest.raises(ProviderConfigError) as caught:
                parse_options(kind, missing)
            assert (caught.value.key, caught.value.reason) == (key, "is required")
            with pytest.raises(ConfigError) as named:
                load(kind, missing)
            assert named.value.key == f"providers[1].{key}"
            assert f"providers[1].{key}" in str(named.value)


@pytest.mark.parametrize("kind", TYPES)
def test_an_unknown_key_is_named(kind: str) -> None:
    unknown = {**MINIMAL[kind], "colour": "blue"}
    with pytest.raises(ProviderConfigError) as caught:
        parse_options(kind, unknown)
    assert caught.value.key == "colour"
    with pytest.raises(ConfigError) as named:
        load(kind, unknown)
    assert named.value.key == "providers[1].colour"
    assert all(f.name in str(named.value) for f in option_fields(kind))  # the valid ones


@pytest.mark.parametrize("kind", TYPES)
def test_every_option_key_can_come_from_the_environment(kind: str) -> None:
    options = parse_options(kind, MINIMAL[kind])
    environ = {
        env_var(f.name): str(getattr(options, f.name))
        for f in option_fields(kind)
        if getattr(options, f.name) is not None
    }
    assert load(kind, {}, environ).provider(NAME).options == options


@pytest.mark.parametrize("kind", TYPES)
def test_secrets_stay_out_of_reprs_and_errors(kind: str) -> None:
    hidden = {key: str(MINIMAL[kind][key]) for key in secrets(kind)}
    assert sorted(f.name for f in option_fields(kind) if not f.repr) == sorted(hidden)
    plain = {k: v for k, v in MINIMAL[kind].items() if k not in hidden}
    settings = load(kind, plain, {env_var(k): v for k, v in hidden.items()})
    options = settings.provider(NAME).options
    assert {k: getattr(options, k) for k in hidden} == hidden  # the environment reached them
    said = [repr(settings), repr(options), str(settings.provider(NAME))]
    for bad in ({**MINIMAL[kind], "colour": "blue"}, {**MINIMAL[kind], "base_url": "ftp://h"}):
        with pytest.raises(ConfigError) as caught:
            load(kind, bad)
        said.append(str(caught.value))
    wrong_type = 987_654_321  # a secret of the wrong type is not quoted either
    for key in list(hidden):
        with pytest.raises(ConfigError) as caught:
            load(kind, {**MINIMAL[kind], key: wrong_type})
        assert caught.value.key == f"providers[1].{key}"
        said.append(str(caught.value))
    quoted = [s for s in [*hidden.values(), str(wrong_type)] for text in said if s in text]
    assert not quoted


@pytest.mark.parametrize("kind", TYPES)
async def test_opens_as_a_provider_and_closes(kind: str, http: aiohttp.ClientSession) -> None:
    settings = load(kind, MINIMAL[kind]).provider(NAME)
    provider = await open_provider(settings, http)
    try:
        assert isinstance(provider, Provider)
        assert provider.name == NAME
        assert provider.max_message_bytes > 0
    finally:
        await provider.aclose()
