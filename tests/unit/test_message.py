"""Queue schema v1: every field validated with an error naming it; encode/decode round trip."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.message import MAX_BODY_BYTES, Address, Email, MessageError, decode, encode

MAX_FIELD_CHARS = 64  # what an error may show of a field name (dispatcher.message)


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
        ({"created_at": 1e308}, "created_at"),  # int(1e308 * 1000) overflows in the ledger
        ({"created_at": -1}, "created_at"),
        ({"created_at": 253_402_300_800}, "created_at"),  # after 9999-12-31T23:59:59Z
        ({"created_at": 2**64 - 1}, "created_at"),
        ({"created_at": True}, "created_at"),
        ({"created_at": "0001-01-01T00:00:00Z"}, "created_at"),
        ({"created_at": "9999-12-31T23:59:59-23:59"}, "created_at"),
        ({"to": [{"email": "a\x00b@example.org"}]}, "to[0].email"),
        ({"to": [{"email": "a@example.org\n"}]}, "to[0].email"),
        ({"id": "m-1\n"}, "id"),
        ({"headers": {"X-A\n": "1"}}, "headers.<4 chars>"),
        ({"tags": {"k": "v\n"}}, "tags.k"),
        ({"from": {"email": "shop@example.com", "name": "Shop\x00"}}, "from.name"),
        ({"subject": "Receipt\u2028Bcc: x@example.org"}, "subject"),
    ],
)
def test_invalid_fields_are_named(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(MessageError) as caught:
        decode(body(**overrides))
    assert caught.value.field == field


def test_created_at_is_bounded_to_years_1970_to_9999() -> None:
    assert decode(body(created_at=0)).created_at == 0.0
    assert decode(body(created_at="9999-12-31T23:59:59Z")).created_at == 253_402_300_799.0


@pytest.mark.parametrize("char", ["\x00", "\x0b", "\x1f", "\x7f", "\x85", "\u2028", "\u2029"])
@pytest.mark.parametrize("where", ["headers", "name", "subject"])
def test_control_and_separator_characters_are_refused(char: str, where: str) -> None:
    cases: dict[str, dict[str, Any]] = {
        "headers": {"headers": {"X-A": f"a{char}b"}},
        "name": {"to": [{"email": "ann@example.org", "name": f"Ann{char}"}]},
        "subject": {"subject": f"Receipt{char}"},
    }
    overrides = cases[where]
    with pytest.raises(MessageError) as caught:
        decode(body(**overrides))
    assert caught.value.field == {"headers": "headers.X-A", "name": "to[0].name"}.get(where, where)


def test_a_tab_is_allowed_in_headers_names_and_subjects() -> None:
    email = decode(
        body(subject="a\tb", headers={"X-A": "1\t2"}, to={"email": "a@b.org", "name": "A\tB"})
    )
    assert (email.subject, email.headers, email.to[0].name) == ("a\tb", (("X-A", "1\t2"),), "A\tB")


@pytest.mark.parametrize(
    "name",
    ["X-SES-CONFIGURATION-SET", "x-ses-source-arn", "X-Mailgun-Variables", "X-SMTPAPI", "BCC"],
)
def test_provider_control_headers_are_reserved(name: str) -> None:
    with pytest.raises(MessageError, match="not an allowed header name") as caught:
        decode(body(headers={name: "x"}))
    assert caught.value.field == f"headers.{name}"


def test_errors_carry_no_producer_data() -> None:
    """A field name is shown capped, escaped and with any address masked; never a value."""
    secret = "ann@example.org Receipt\n\x00" * 2000
    long_name = "X-" + "a" * MAX_FIELD_CHARS + secret.replace(" ", "-")
    cases: list[dict[str, Any]] = [
        {"unknown" + "\x00" * MAX_FIELD_CHARS + secret: 1},
        {"v": secret},
        {"headers": {long_name: "x"}},
        {"headers": {long_name: "1\n2"}},
        {"tags": {"t" * MAX_FIELD_CHARS + secret: "x"}},
        {"to": {"email": "bob@example.org", "ann@example.org": "Ann"}},
        {"headers": {"ann@example.org": "x\n"}},
    ]
    for overrides in cases:
        with pytest.raises(MessageError) as caught:
            decode(body(**overrides))
        error = caught.value
        assert len(error.field) <= MAX_FIELD_CHARS
        assert error.field.isprintable()
        assert error.field.isascii()
        assert "ann@" not in str(error)
        assert "Receipt" not in str(error)


def test_a_string_body_that_is_not_unicode_is_refused() -> None:
    with pytest.raises(MessageError) as caught:
        decode("\ud800")
    assert caught.value.field == "body"


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
            st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"]),
            min_size=1,
            max_size=20,
        ),
    ),
)


@given(
    sender=addresses,
    to=st.lists(addresses, min_size=1, max_size=5, unique_by=lambda a: a.email.lower()),
    subject=st.text(
        st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"]),
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
