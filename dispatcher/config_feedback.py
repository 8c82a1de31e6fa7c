"""Settings of delivery feedback: `[webhooks]` (the provider webhooks the API takes) and
`[suppression]` (the keyed hashes of the suppression list). Part of `dispatcher.config`, which
parses, checks (`problems`) and freezes them with the rest."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

SNS_HOSTS = r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?"


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """A webhook whose key is empty is not served (404)."""

    sendgrid_public_key: str = ""  # the Event Webhook's verification key (base64 DER, P-256)
    mailgun_signing_key: str = field(default="", repr=False)  # Mailgun's webhook signing key
    max_age_seconds: int = 600  # SendGrid and Mailgun: an older signed timestamp is refused
    ses_enabled: bool = False  # take SNS notifications at /v1/webhooks/ses
    sns_topic_arns: str = ""  # comma-separated topics accepted; empty: any topic
    sns_max_age_seconds: int = 3600  # an SNS message older than this is refused
    sns_host_pattern: str = SNS_HOSTS  # certificate and SubscribeURL hosts (a full match)
    sns_insecure_http: bool = False  # tests only: allow http:// for the local fake


@dataclass(frozen=True, slots=True)
class SuppressionSettings:
    secret: str = field(default="", repr=False)  # HMAC key; empty: from redis.key_prefix


def problems(webhooks: WebhookSettings) -> list[tuple[str, str]]:
    """(key, reason) for each value the types alone cannot rule out."""
    found: list[tuple[str, str]] = []
    if not 10 <= webhooks.max_age_seconds <= 86_400:
        found.append(("webhooks.max_age_seconds", "must be 10..86400"))
    if not 60 <= webhooks.sns_max_age_seconds <= 7 * 86_400:
        found.append(("webhooks.sns_max_age_seconds", "must be 60..604800"))
    if webhooks.sendgrid_public_key:
        try:
            base64.b64decode(webhooks.sendgrid_public_key, validate=True)
        except (binascii.Error, ValueError):
            found.append(("webhooks.sendgrid_public_key", "must be base64 (as SendGrid shows it)"))
    try:
        re.compile(webhooks.sns_host_pattern)
    except re.error:
        found.append(("webhooks.sns_host_pattern", "must be a regular expression"))
    return found
