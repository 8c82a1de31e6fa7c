"""One full email, and an SES identity verified on moto."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiobotocore.session import get_session

from dispatcher.dev.fakes import MotoServer
from dispatcher.message import Address, Email

SENDER = Address("shop@example.com", "Shöp, Inc.")


def an_email(**changes: Any) -> Email:
    email = Email(
        id="order-42-receipt",
        sender=SENDER,
        to=(Address("ann@example.org", "Ann Example"), Address("bob@example.org")),
        cc=(Address("carl@example.org", "Carl"),),
        bcc=(Address("dora@example.org"),),
        reply_to=(Address("help@example.com", "Help Desk"),),
        subject="Your receipt #42",
        text="Thanks for your order.",
        html="<p>Thanks for your order.</p>",
        headers=(("X-Order", "42"),),
        tags=(("kind", "receipt"),),
    )
    return replace(email, **changes)


async def verify_identity(moto: MotoServer, identity: str) -> None:
    async with get_session().create_client(
        "sesv2", region_name="us-east-1", endpoint_url=moto.endpoint_url
    ) as client:
        await client.create_email_identity(EmailIdentity=identity)
