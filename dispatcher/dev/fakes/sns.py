"""A small fake Amazon SNS publisher for the SES webhook: it signs messages as SNS does, with a
test RSA key whose self-signed X.509 certificate it serves at `cert_url`, and counts the
subscription confirmations it receives at `GET /confirm`.

    async with FakeSns() as sns:
        doc = sns.notification(ses_bounce(message_id, "ann@example.org"))  # signed, version 1
        await http.post(webhook_url, data=orjson.dumps(doc))

The API trusts it with `webhooks.sns_host_pattern = "127\\.0\\.0\\.1"` and
`webhooks.sns_insecure_http = true` (tests only; the default is https on
`sns.<region>.amazonaws.com`).
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any, Self

import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from dispatcher.api.sns import string_to_sign

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


class FakeSns:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = _certificate(self.key)
        self.cert_fetches = 0
        self.confirmations: list[str] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @property
    def cert_url(self) -> str:
        return f"{self.base_url}/SimpleNotificationService-test.pem"

    def sign(self, doc: dict[str, Any], version: str = "1") -> dict[str, Any]:
        """`doc` with SignatureVersion, SigningCertURL and Signature, as SNS adds them."""
        signed = {**doc, "SignatureVersion": version, "SigningCertURL": self.cert_url}
        raw = self.key.sign(string_to_sign(signed), padding.PKCS1v15(), _HASHES[version]())
        return {**signed, "Signature": base64.b64encode(raw).decode()}

    def notification(
        self, message: dict[str, Any], version: str = "1", topic: str = TOPIC
    ) -> dict[str, Any]:
        return self.sign(
            {
                "Type": "Notification",
                "MessageId": str(uuid.uuid4()),
                "TopicArn": topic,
                "Message": orjson.dumps(message).decode(),
                "Timestamp": _now(),
            },
            version,
        )

    def subscription_confirmation(self, topic: str = TOPIC) -> dict[str, Any]:
        token = uuid.uuid4().hex
        return self.sign(
            {
                "Type": "SubscriptionConfirmation",
                "MessageId": str(uuid.uuid4()),
                "Token": token,
                "TopicArn": topic,
                "Message": "You have chosen to subscribe to the topic.",
                "SubscribeURL": f"{self.base_url}/confirm?Token={token}",
                "Timestamp": _now(),
            }
        )

    async def _cert(self, request: web.Request) -> web.Response:
        self.cert_fetches += 1
        return web.Response(body=self.pem, content_type="application/x-pem-file")

    async def _confirm(self, request: web.Request) -> web.Response:
        self.confirmations.append(request.query.get("Token", ""))
        return web.Response(text="<ConfirmSubscriptionResponse/>", content_type="text/xml")

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.add_routes(
            [
                web.get("/SimpleNotificationService-test.pem", self._cert),
                web.get("/confirm", self._confirm),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def ses_bounce(
    message_id: str, recipient: str, dispatcher_id: str | None = None, hard: bool = True
) -> dict[str, Any]:
    """An SES bounce notification (as SES publishes it to SNS) for one recipient."""
    tags = {"dispatcher_id": [dispatcher_id]} if dispatcher_id else {}
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent" if hard else "Transient",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "status": "5.1.1",
                    "action": "failed",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": _now(),
            "feedbackId": str(uuid.uuid4()),
        },
        "mail": {
            "timestamp": _now(),
            "messageId": message_id,
            "source": "shop@example.com",
            "destination": [recipient],
            "tags": tags,
        },
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
