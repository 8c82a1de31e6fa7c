"""Signature checks for the SendGrid and Mailgun webhooks, and the replay guard all three share.

SendGrid   ECDSA P-256 / SHA-256 (`cryptography`) over `X-Twilio-Email-Event-Webhook-Timestamp`
           followed by the raw body, with the Event Webhook's verification key; the signature
           is `X-Twilio-Email-Event-Webhook-Signature` (base64 DER).
Mailgun    HMAC-SHA-256 (`hmac`, compared with `compare_digest`) of `timestamp + token` with
           the webhook signing key, against `signature.signature` (hex).

Both refuse a timestamp more than `webhooks.max_age_seconds` away from now. `Replays` remembers
what was accepted (Mailgun's token, SendGrid's signature, SNS's MessageId) with `SET NX` and a
TTL longer than that age, so a captured request cannot be played again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dispatcher import keys
from dispatcher.scripts import RedisClient


class Rejected(Exception):
    """A webhook request refused: `status` 401 (no or bad signature) or 403 (stale, replayed,
    or not for us); `reason` is our own short text, safe to log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """The Event Webhook's verification key: base64 of its DER SubjectPublicKeyInfo (a PEM
    with or without its armour is taken too)."""
    body = "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))
    key = serialization.load_der_public_key(base64.b64decode(body))
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 public key")
    return key


def verify_sendgrid(
    key: ec.EllipticCurvePublicKey, signature: str, timestamp: str, body: bytes
) -> None:
    if not signature or not timestamp:
        raise Rejected(401, "missing signature headers")
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise Rejected(401, "bad signature") from None


def verify_mailgun(signing_key: str, timestamp: str, token: str, signature: str) -> None:
    if not (timestamp and token and signature):
        raise Rejected(401, "missing signature fields")
    expected = hmac.new(
        signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise Rejected(401, "bad signature")


def check_age(timestamp: str | float, now: float, max_age: float) -> float:
    """The timestamp (epoch s), or Rejected when it is unreadable or too far from now."""
    try:
        at = float(timestamp)
    except (TypeError, ValueError):
        raise Rejected(401, "unreadable timestamp") from None
    if not abs(now - at) <= max_age:
        raise Rejected(403, "timestamp too old (or in the future)")
    return at


class Replays:
    """What each webhook accepted, remembered for `ttl_seconds`."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, provider: str, token: str) -> str:
        digest = hashlib.sha256(token.encode()).hexdigest()[:32]
        return keys.webhook_seen(self._prefix, provider, digest)

    async def first(self, provider: str, token: str, ttl_seconds: int) -> None:
        """Take `token`; Rejected(403) when it was taken before."""
        if not await self._redis.set(self._key(provider, token), "1", nx=True, ex=ttl_seconds):
            raise Rejected(403, "replayed")

    async def forget(self, provider: str, token: str) -> None:
        """Let `token` through again (its processing failed: the provider will retry)."""
        await self._redis.delete(self._key(provider, token))
