"""Request and response models (pydantic v2): they validate requests, reporting every problem at
once, and they are the source of `/openapi.json`.

The rules are those of queue schema v1 (`dispatcher.message`), which the worker applies again,
so that nothing the API accepts is refused at sending time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from dispatcher import message_fields as rules

MAX_TO = 1000
Status = Literal[
    "PENDING", "QUEUED", "SENDING", "SENT", "ERROR", "DELIVERED", "BOUNCED", "COMPLAINED"
]

BounceType = Literal["hard", "soft"]


def _email(value: str) -> str:
    if not rules.is_address(value):
        raise ValueError("not a valid address")
    return value


def _one_line(value: str) -> str:
    problem = rules.line_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _header_name(value: str) -> str:
    if not rules.is_allowed_header(value):
        raise ValueError("not an allowed header name")
    return value


EmailText = Annotated[str, AfterValidator(_email)]
OneLine = Annotated[str, AfterValidator(_one_line)]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:@/+=-]{1,200}$")]
TagText = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
HeaderName = Annotated[str, AfterValidator(_header_name)]
Subject = Annotated[
    str,
    StringConstraints(min_length=1, max_length=rules.MAX_SUBJECT_LENGTH, pattern=r"\S"),
    AfterValidator(_one_line),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Address(Strict):
    email: EmailText = Field(examples=["ann@example.org"])
    name: Annotated[OneLine, Field(max_length=256)] | None = None


class EmailRequest(Strict):
    """One email, sent to each `to` recipient as a private copy (one queue message each)."""

    sender: Address = Field(alias="from")
    to: list[Address] = Field(min_length=1, max_length=MAX_TO)
    cc: list[Address] = Field(
        default=[], max_length=rules.MAX_RECIPIENTS - 1, description="only with one `to`"
    )
    bcc: list[Address] = Field(
        default=[], max_length=rules.MAX_RECIPIENTS - 1, description="only with one `to`"
    )
    reply_to: list[Address] = Field(default=[], max_length=rules.MAX_RECIPIENTS)
    subject: Subject
    text: str | None = Field(default=None, description="text and/or html is required")
    html: str | None = None
    headers: dict[HeaderName, OneLine] = Field(default={}, max_length=rules.MAX_HEADERS)
    tags: dict[TagText, TagText] = Field(default={}, max_length=rules.MAX_TAGS)
    batch_id: Identifier | None = None


class MessageRef(Strict):
    id: str
    to: str
    result: Literal["queued", "suppressed"] = Field(
        default="queued", description="suppressed: on the suppression list, not enqueued"
    )


class EmailAccepted(Strict):
    batch_id: str
    messages: list[MessageRef]


class FieldError(Strict):
    field: str
    error: str


class ErrorBody(Strict):
    error: str
    errors: list[FieldError] = []
    queued: list[str] | None = Field(default=None, description="on 503: ids on the queue")
    not_queued: list[str] | None = Field(
        default=None, description="on 503: ids still PENDING; retry with the same Idempotency-Key"
    )


class EmailStatus(Strict):
    id: str
    batch_id: str | None
    status: Status
    provider: str | None
    provider_message_id: str | None
    attempts: int
    error: str | None
    created_by: str | None
    created_at: datetime | None
    updated_at: datetime | None
    bounce_type: BounceType | None = Field(default=None, description="when BOUNCED")
    event_at: datetime | None = Field(
        default=None, description="DELIVERED, BOUNCED, COMPLAINED: when the provider saw it"
    )
    reason_code: str | None = Field(
        default=None, description="the provider's reason: an SMTP status, a bounce subtype"
    )


class EmailPage(Strict):
    messages: list[EmailStatus]
    next_cursor: str | None


class BatchStatus(Strict):
    batch_id: str
    total: int
    counts: dict[Status, int]
    messages: list[EmailStatus]
    next_cursor: str | None


class ListQuery(Strict):
    status: Status | None = None
    batch_id: Identifier | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    limit: int = Field(default=50, ge=1, le=1000)
    cursor: Annotated[str, StringConstraints(max_length=512)] | None = None


class PageQuery(Strict):
    limit: int = Field(default=50, ge=1, le=1000)
    cursor: Annotated[str, StringConstraints(max_length=512)] | None = None


class RejectedRow(Strict):
    row: int = Field(description="1-based line number of the record, the header being 1")
    error: str


class CampaignAccepted(Strict):
    batch_id: str
    accepted: int
    skipped_duplicates: int
    suppressed: int = Field(default=0, description="rows whose address is suppressed: skipped")
    rejected: int = Field(default=0, description="bad rows, all counted")
    rejected_rows: list[RejectedRow] = Field(description="the first 1,000 bad rows")


class CampaignForm(Strict):
    """multipart/form-data; send `file` last (parts after it are not read)."""

    sender: str = Field(alias="from", description="`email` or `Name <email>`")
    subject: str = Field(description="template: {{column}} is replaced")
    text: str | None = Field(default=None, description="template; text and/or html")
    html: str | None = Field(default=None, description="template; values are HTML-escaped")
    batch_id: Identifier | None = None
    file: bytes = Field(description="CSV, UTF-8, header row with `email`; name, subject, ...")
