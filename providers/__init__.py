"""Email providers behind one protocol (`providers.base`), and the registry that opens them.

`PROVIDER_TYPES` maps each config `type` to the function that opens such a provider; an
unknown type raises `ProviderConfigError` naming the valid ones::

    sendgrid   providers.sendgrid.SendGrid    HTTP, the shared aiohttp session
    mailgun    providers.mailgun.Mailgun      HTTP, the shared aiohttp session
    ses        providers.ses.Ses              its own aiobotocore client, closed by aclose()
    simulated  providers.simulated.Simulated  dry run, seeded
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import aiohttp

from dispatcher.config import ProviderSettings
from providers.base import Outcome, Provider, ProviderConfigError, ProviderError, Status
from providers.mailgun import Mailgun
from providers.sendgrid import SendGrid
from providers.ses import Ses
from providers.simulated import Simulated

__all__ = [
    "PROVIDER_TYPES",
    "Mailgun",
    "Outcome",
    "Provider",
    "ProviderConfigError",
    "ProviderError",
    "SendGrid",
    "Ses",
    "Simulated",
    "Status",
    "open_provider",
    "open_providers",
]

Opener = Callable[[ProviderSettings, aiohttp.ClientSession], Awaitable[Provider]]


async def _sendgrid(settings: ProviderSettings, http: aiohttp.ClientSession) -> Provider:
    return SendGrid(settings, http)


async def _mailgun(settings: ProviderSettings, http: aiohttp.ClientSession) -> Provider:
    return Mailgun(settings, http)


async def _ses(settings: ProviderSettings, http: aiohttp.ClientSession) -> Provider:
    return await Ses.open(settings)


async def _simulated(settings: ProviderSettings, http: aiohttp.ClientSession) -> Provider:
    return Simulated(settings)


PROVIDER_TYPES: dict[str, Opener] = {
    "ses": _ses,
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "simulated": _simulated,
}


async def open_provider(settings: ProviderSettings, http: aiohttp.ClientSession) -> Provider:
    """Open the provider `settings` describes; HTTP providers post through `http`."""
    opener = PROVIDER_TYPES.get(settings.type)
    if opener is None:
        valid = ", ".join(sorted(PROVIDER_TYPES))
        raise ProviderConfigError(
            f"provider {settings.name}: unknown type {settings.type!r}; valid types: {valid}"
        )
    return await opener(settings, http)


async def open_providers(
    all_settings: Iterable[ProviderSettings], http: aiohttp.ClientSession
) -> tuple[Provider, ...]:
    """Open every provider, in order; if one fails, those already opened are closed."""
    opened: list[Provider] = []
    try:
        for settings in all_settings:
            opened.append(await open_provider(settings, http))
    except BaseException:
        for provider in reversed(opened):
            await provider.aclose()
        raise
    return tuple(opened)
