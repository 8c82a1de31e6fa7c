"""Queue schema v1: every field validated with an error naming it; encode/decode round trip."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.message import MAX_BODY_BYTES, Address, Email, MessageError, decode, encode


def body(**overrides: Any) -> bytes:
    doc: dict[str, Any] = {
        "v": 1,
        "id": "m-1",
        "from": {"email": "shop@example.com", "name": "Shop"},
        "to": [{"email": "ann@example.org", "name": "Ann"}],
        "subject": "Receipt",
        "text": "hello",
    }
    doc.update(overrides)
    return orjson.dumps({k: v for k, v in doc.items() if v is not ...})


def test_decodes_a_full_message() -> None:
    email = decode(
        body(
            batch_id="b-1",
            cc=[{"email": "c@example.org"}],
            bcc=[{"email": "d@example.org"}],
            reply_to={"email": "help@example.com"},
            html="<p>hi</p>",
            headers={"X-Order": "42"},
            tags={"kind": "receipt"},
            created_at="2026-11-22T18:00:00Z",
        )
    )
    assert email.id == "m-1"
    assert email.sender == Address("shop@example.com", "Shop")
    assert email.to == (Address("ann@example.org", "Ann"),)
    assert email.reply_to == (Address("help@example.com"),)
    assert email.headers == (("X-Order", "42"),)
    assert email.tags == (("kind", "receipt"),)
    assert email.created_at == 1795370400.0
    assert email.recipient_count == 3


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"v": 2}, "v"),
        ({"id": ...}, "id"),
        ({"id": "has space"}, "id"),
        ({"from": {"email": "nope"}}, "from.email"),
        ({"to": []}, "to"),
        ({"to": [{"email": "x@example.org"}, {"email": "X@example.org"}]}, "to"),
        ({"to": [{"email": "ok@example.org"}, {"email": "bad"}]}, "to[1].email"),
        ({"to": [{"email": f"r{i}@example.org"} for i in range(51)]}, "to"),
        ({"cc": [{"email": f"c{i}@example.org"} for i in range(50)]}, "to"),
        ({"subject": ""}, "subject"),
        ({"subject": "a\r\nBcc: evil@example.org"}, "subject"),
        ({"text": ..., "html": ...}, "text"),
        ({"text": 5}, "text"),
        ({"headers": {"Bcc": "x@example.org"}}, "headers.Bcc"),
        ({"headers": {"X-A": "1\n2"}}, "headers.X-A"),
        ({"tags": {"k": "has space"}}, "tags.k"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"surprise": 1}, "surprise"),
        ({"to": [{"email": "a@example.org", "nam": "A"}]}, "to[0].nam"),
    ],
)
def test_invalid_fields_are_named(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(MessageError) as caught:
        decode(body(**overrides))
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"x" * (MAX_BODY_BYTES + 1), "exceeds"),
    ],
)
def test_undecodable_bodies_name_the_body(raw: bytes, reason: str) -> None:
    with pytest.raises(MessageError, match=reason) as caught:
        decode(raw)
    assert caught.value.field == "body"


addresses = st.builds(
    Address,
    email=st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.(com|org)", fullmatch=True),
    name=st.one_of(
        st.none(),
        st.text(
            st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
            min_size=1,
            max_size=20,
        ),
    ),
)


@given(
    sender=addresses,
    to=st.lists(addresses, min_size=1, max_size=5, unique_by=lambda a: a.email.lower()),
    subject=st.text(
        st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
        min_size=1,
        max_size=50,
    ).filter(str.strip),
    text=st.text(st.characters(blacklist_categories=["Cs"]), max_size=200).filter(bool),
)
def test_encode_decode_round_trip(
    sender: Address, to: list[Address], subject: str, text: str
) -> None:
    email = Email(
        id="rt-1",
        sender=sender,
        to=tuple(to),
        subject=subject,
        text=text,
        created_at=1_700_000_000.5,
    )
    assert decode(encode(email)) == email
