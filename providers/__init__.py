"""Email providers behind one protocol, and the registry that parses their options and opens them.

`PROVIDER_TYPES` maps each config `type` to its provider class; an unknown type raises
`ProviderConfigError` naming the valid ones::

    sendgrid   providers.sendgrid.SendGrid    HTTP, the shared aiohttp session
    mailgun    providers.mailgun.Mailgun      HTTP, the shared aiohttp session
    ses        providers.ses.Ses              HTTP signed by botocore, the shared aiohttp session
    simulated  providers.simulated.Simulated  dry run, seeded

A new provider is one module here (its frozen options dataclass, and a class with
`parse_options`, `open` and `send`, which builds the request and runs it through
`BaseProvider.exchange`, as `providers.sendgrid` does it) and one line below;
the config loader hands every key of an entry it does not know to the class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

import aiohttp

from providers.base import (
    Outcome,
    Provider,
    ProviderConfigError,
    ProviderError,
    ProviderType,
    Status,
)
from providers.mailgun import Mailgun, MailgunOptions
from providers.sendgrid import SendGrid, SendGridOptions
from providers.ses import Ses, SesOptions
from providers.simulated import Simulated, SimulatedOptions

__all__ = [
    "PROVIDER_TYPES",
    "Mailgun",
    "MailgunOptions",
    "Outcome",
    "Provider",
    "ProviderConfigError",
    "ProviderError",
    "ProviderSpec",
    "ProviderType",
    "SendGrid",
    "SendGridOptions",
    "Ses",
    "SesOptions",
    "Simulated",
    "SimulatedOptions",
    "Status",
    "open_provider",
    "open_providers",
    "parse_options",
    "provider_type",
]

PROVIDER_TYPES: dict[str, ProviderType] = {
    "sendgrid": SendGrid,
    "mailgun": Mailgun,
    "ses": Ses,
    "simulated": Simulated,
}


class ProviderSpec(Protocol):
    """One configured provider, as opening it needs (the config's `ProviderSettings` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def timeout_seconds(self) -> float: ...

    @property
    def options(self) -> object: ...


def provider_type(name: object) -> ProviderType:
    """The class registered for config `type` `name`; an unknown one lists the valid types."""
    found = PROVIDER_TYPES.get(name) if isinstance(name, str) else None
    if found is None:
        valid = ", ".join(sorted(PROVIDER_TYPES))
        said = "is required" if name is None else f"{name!r} is not a provider type"
        raise ProviderConfigError("type", f"{said}; valid types: {valid}")
    return found


def parse_options(type_name: object, raw: Mapping[str, object]) -> object:
    """The validated options of a provider of type `type_name` from its own keys in `raw`."""
    return provider_type(type_name).parse_options(raw)


async def open_provider(spec: ProviderSpec, http: aiohttp.ClientSession) -> Provider:
    """Open the provider `spec` describes; HTTP providers post through `http`."""
    kind = provider_type(spec.type)
    return await kind.open(spec.name, spec.timeout_seconds, spec.options, http)


async def open_providers(
    specs: Iterable[ProviderSpec], http: aiohttp.ClientSession
) -> tuple[Provider, ...]:
    """Open every provider, in order; if one fails, those already opened are closed."""
    opened: list[Provider] = []
    try:
        for spec in specs:
            opened.append(await open_provider(spec, http))
    except BaseException:
        for provider in reversed(opened):
            await provider.aclose()
        raise
    return tuple(opened)
