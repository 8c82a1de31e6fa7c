"""Amazon SNS message signatures, for SES events delivered over an HTTPS subscription.

Each message names the certificate that signed it (`SigningCertURL`). It is fetched only from
a URL whose scheme is https and whose host fully matches `webhooks.sns_host_pattern`
(`sns.<region>.amazonaws.com` by default; no user info, no other port), read as PEM X.509
(`cryptography`), checked to be within its validity period, and cached by URL. The signature
(`Signature`, base64) is RSA PKCS#1 v1.5 over the canonical string of the message's fields,
with SHA-1 for `SignatureVersion` 1 and SHA-256 for 2. Then the topic must be one of
`webhooks.sns_topic_arns` (when set) and the `Timestamp` within `sns_max_age_seconds`.

A `SubscriptionConfirmation`, once verified, is confirmed by fetching its `SubscribeURL`, which
must pass the same host rule.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from dispatcher.api.webhook_auth import Rejected, check_age
from dispatcher.config_feedback import WebhookSettings

Fetch = Callable[[str], Awaitable[bytes]]  # GET a URL, its body (raises OSError on failure)
MAX_CACHED = 64
_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_FIELDS["UnsubscribeConfirmation"] = _FIELDS["SubscriptionConfirmation"]
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


def string_to_sign(doc: Mapping[str, Any]) -> bytes:
    """The canonical text SNS signs: `name\\nvalue\\n` for each signed field present."""
    names = _FIELDS.get(str(doc.get("Type")))
    if names is None:
        raise Rejected(403, "not an SNS message type we take")
    parts = [f"{n}\n{doc[n]}\n" for n in names if n in doc and doc[n] is not None]
    return "".join(parts).encode()


class SnsVerifier:
    def __init__(self, settings: WebhookSettings, fetch: Fetch) -> None:
        self._settings = settings
        self._hosts = re.compile(settings.sns_host_pattern)
        self._topics = {t.strip() for t in settings.sns_topic_arns.split(",") if t.strip()}
        self._fetch = fetch
        self._certs: dict[str, x509.Certificate] = {}
        self._lock = asyncio.Lock()

    def allowed(self, url: str) -> bool:
        """Whether `url` may be fetched: https (http only with sns_insecure_http) on an
        allowed host, with no user info."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        schemes = ("https", "http") if self._settings.sns_insecure_http else ("https",)
        if parts.scheme not in schemes or parts.username or parts.password:
            return False
        if port is not None and not self._settings.sns_insecure_http and port != 443:
            return False
        return bool(parts.hostname and self._hosts.fullmatch(parts.hostname))

    async def verify(self, doc: Mapping[str, Any], now: float) -> None:
        """Rejected unless `doc` is a well-signed, recent SNS message for an accepted topic."""
        version = str(doc.get("SignatureVersion", ""))
        if version not in _HASHES:
            raise Rejected(401, "unknown SignatureVersion")
        url = str(doc.get("SigningCertURL", ""))
        if not self.allowed(url):
            raise Rejected(403, "SigningCertURL not on an allowed SNS host")
        cert = await self._certificate(url, now)
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Rejected(401, "signing certificate holds no RSA key")
        try:
            signature = base64.b64decode(str(doc.get("Signature", "")), validate=True)
            key.verify(signature, string_to_sign(doc), padding.PKCS1v15(), _HASHES[version]())
        except (InvalidSignature, binascii.Error, ValueError):
            raise Rejected(401, "bad signature") from None
        if self._topics and doc.get("TopicArn") not in self._topics:
            raise Rejected(403, "topic not accepted")
        check_age(_epoch(doc.get("Timestamp")), now, self._settings.sns_max_age_seconds)

    async def confirm(self, doc: Mapping[str, Any]) -> None:
        """Confirm a verified subscription by fetching its SubscribeURL."""
        url = str(doc.get("SubscribeURL", ""))
        if not self.allowed(url):
            raise Rejected(403, "SubscribeURL not on an allowed SNS host")
        await self._fetch(url)

    async def _certificate(self, url: str, now: float) -> x509.Certificate:
        async with self._lock:  # one fetch per URL, however many messages arrive at once
            cert = self._certs.get(url)
            if cert is None:
                try:
                    cert = x509.load_pem_x509_certificate(await self._fetch(url))
                except (TimeoutError, OSError, ValueError):
                    raise Rejected(401, "signing certificate unavailable") from None
                if len(self._certs) >= MAX_CACHED:
                    self._certs.clear()
                self._certs[url] = cert
        moment = datetime.fromtimestamp(now, UTC)
        if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
            raise Rejected(401, "signing certificate expired")
        return cert


def _epoch(text: object) -> float:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
