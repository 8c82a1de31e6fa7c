"""The SendGrid body built as plain data is the official helper's body, byte for byte as JSON.

`providers.sendgrid.build` writes the `/v3/mail/send` body without the helper's objects (it
costs a fifth as much). `helper_body` below is how the body was built before, with
`sendgrid.helpers.mail`; hypothesis draws messages with every field (names or none, repeated
and differently cased addresses across to/cc/bcc, one or several reply-to, headers and tags
with repeated keys, text and/or HTML) and the two must dump to the same JSON bytes.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sendgrid.helpers.mail import Bcc, Cc, CustomArg, From, Header, Mail, ReplyTo, To
from sendgrid.helpers.mail.exceptions import ApiKeyIncludedException

from dispatcher.message import Address, Email
from providers.sendgrid import build

_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)  # no lone surrogates
_LOCAL = st.sampled_from(["ann", "Ann", "bob", "BOB", "cy", "dee"])
_ADDRESS = st.builds(
    Address,
    email=st.builds("{}@{}".format, _LOCAL, st.sampled_from(["example.org", "Example.org"])),
    name=st.one_of(st.none(), st.just(""), _TEXT),
)
_ADDRESSES = st.lists(_ADDRESS, max_size=4).map(tuple)
_PAIRS = st.lists(
    st.tuples(st.sampled_from(["X-A", "X-B", "k", "dispatcher_id"]), _TEXT), max_size=4
)


@st.composite
def emails(draw: st.DrawFn) -> Email:
    bodies = draw(st.sampled_from(["text", "html", "both"]))
    return Email(
        id=draw(st.sampled_from(["m-1", "campaign:42"])),
        sender=draw(_ADDRESS),
        to=(draw(_ADDRESS), *draw(_ADDRESSES)),
        cc=draw(_ADDRESSES),
        bcc=draw(_ADDRESSES),
        reply_to=draw(st.lists(_ADDRESS, max_size=3).map(tuple)),
        subject=draw(_TEXT),
        text=draw(_TEXT) if bodies in ("text", "both") else None,
        html=draw(_TEXT) if bodies in ("html", "both") else None,
        headers=tuple(draw(_PAIRS)),
        tags=tuple(draw(_PAIRS.map(lambda pairs: [p for p in pairs if p[0] != "dispatcher_id"]))),
    )


def helper_body(email: Email) -> dict[str, Any]:
    """The body as the official helper builds it (the code `build` replaced)."""
    mail = Mail(
        from_email=_helper_mailbox(From, email.sender),
        subject=email.subject,
        plain_text_content=email.text,
        html_content=email.html,
    )
    seen: set[str] = set()
    for kind, addresses, add in (
        (To, email.to, mail.add_to),
        (Cc, email.cc, mail.add_cc),
        (Bcc, email.bcc, mail.add_bcc),
    ):
        for address in addresses:
            if address.email.lower() not in seen:
                seen.add(address.email.lower())
                add(_helper_mailbox(kind, address))
    if len(email.reply_to) == 1:
        mail.reply_to = _helper_mailbox(ReplyTo, email.reply_to[0])
    elif email.reply_to:
        mail.reply_to_list = [_helper_mailbox(ReplyTo, a) for a in email.reply_to]
    for key, value in email.headers:
        mail.add_header(Header(key, value))
    for key, value in {**dict(email.tags), "dispatcher_id": email.id}.items():
        mail.add_custom_arg(CustomArg(key, value))
    body: dict[str, Any] = mail.get()
    return body


def _helper_mailbox(kind: type[Any], address: Address) -> Any:
    mailbox = kind()
    mailbox.email = address.email
    if address.name:
        mailbox.name = address.name
    return mailbox


@settings(max_examples=400, deadline=None)
@given(emails())
def test_the_plain_body_is_the_helpers_body_as_json(email: Email) -> None:
    assert orjson.dumps(build(email)) == orjson.dumps(helper_body(email))


def test_a_body_holding_an_api_key_is_refused_as_the_helper_refuses_it() -> None:
    key = "SG." + "a" * 22 + "." + "b" * 43
    email = Email(
        id="m-1",
        sender=Address("a@example.org"),
        to=(Address("b@example.org"),),
        subject="s",
        text=key,
    )
    with pytest.raises(ApiKeyIncludedException):
        helper_body(email)
    with pytest.raises(ApiKeyIncludedException):
        build(email)
