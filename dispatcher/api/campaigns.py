"""`POST /v1/campaigns`: a CSV upload, streamed, one email per new address.

The multipart fields (`from`, `subject`, `text` and/or `html`, optional `batch_id`) come first
and `file` last, as with S3's POST uploads: the file is read as it arrives, record by record
(`csvstream`), and enqueued in groups while the rest is still on its way; parts after it are
not read. Each message id is derived from the batch id and the normalised address (trimmed,
domain case-folded), so the ledger itself dedupes, within the file and across re-uploads with
the same `batch_id`, for as long as the records live. Bad rows: never fatal, all counted, the
first `MAX_LISTED_REJECTIONS` listed (so memory is bounded whatever the file).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from email.utils import parseaddr

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from dispatcher.api.auth import CLIENT
from dispatcher.api.compose import Outgoing, encode_checked
from dispatcher.api.csvstream import CsvRecord, records
from dispatcher.api.enqueue import Enqueuer
from dispatcher.api.errors import ApiError, InvalidRequest, json_response
from dispatcher.api.logging import annotate
from dispatcher.api.services import SERVICES
from dispatcher.api.template import Template
from dispatcher.message import Address, Email
from dispatcher.message_fields import is_address, is_identifier, line_problem, one_line

FIELDS = ("from", "subject", "text", "html", "batch_id")
MAX_FIELD_BYTES = 1024 * 1024
GROUP = 100  # messages per enqueue call
IN_FLIGHT = 4  # enqueue calls at once while reading goes on
OVERRIDES = ("name", "subject", "text", "html")
MAX_LISTED_REJECTIONS = 1000  # rows listed in `rejected_rows`; `rejected` counts them all


@dataclass
class Tally:
    batch_id: str
    accepted: int = 0
    skipped_duplicates: int = 0
    suppressed: int = 0
    not_queued: int = 0
    rejected: int = 0
    rejected_rows: list[dict[str, object]] = field(default_factory=list)

    def body(self) -> dict[str, object]:
        """The reply: every field but `not_queued` (the 503 says it)."""
        return {name: value for name, value in vars(self).items() if name != "not_queued"}


@dataclass(frozen=True, slots=True)
class Campaign:
    sender: Address
    subject: Template
    text: Template | None
    html: Template | None
    batch_id: str
    created: float


async def post_campaign(request: web.Request) -> web.Response:
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "send the campaign as multipart/form-data")
    try:
        values, file = await _fields(await request.multipart())
    except (ValueError, HttpProcessingError):
        raise InvalidRequest([("body", "not valid multipart/form-data")]) from None
    campaign = _campaign(values)
    tally = Tally(campaign.batch_id)
    annotate(request, batch_id=campaign.batch_id)
    services = request.app[SERVICES]
    limit = services.settings.api.max_csv_rows
    reading = Reading(services.enqueuer, tally, uuid.uuid4().hex, request[CLIENT])
    ended = await reading.run(campaign, file, limit)
    annotate(request, accepted=tally.accepted, skipped=tally.skipped_duplicates)
    annotate(request, rejected=tally.rejected, not_queued=tally.not_queued)
    annotate(request, suppressed=tally.suppressed)
    if ended == "broken":
        raise ApiError(
            400,
            "the multipart body is malformed; the rows read before it were enqueued",
            extra=tally.body(),
        )
    if ended == "over":
        raise ApiError(
            413,
            f"the CSV has more than max_csv_rows ({limit}) rows: rows after {limit} were not "
            "read; upload the rest with the same batch_id",
            extra=tally.body(),
        )
    if tally.not_queued:
        raise ApiError(
            503,
            f"SQS did not take {tally.not_queued} messages (recorded PENDING): upload the file "
            "again with the same batch_id to enqueue only those",
            headers={"Retry-After": "5"},
            extra=tally.body(),
        )
    return json_response(202, tally.body())


async def _fields(reader: MultipartReader) -> tuple[dict[str, str], BodyPartReader]:
    values: dict[str, str] = {}
    while True:
        part = await reader.next()
        if part is None:
            raise InvalidRequest([("file", "is required (a CSV, sent last)")])
        if not isinstance(part, BodyPartReader) or part.name not in (*FIELDS, "file"):
            raise InvalidRequest([(str(getattr(part, "name", "part")), "unknown field")])
        if part.name == "file":
            return values, part
        values[part.name] = await _read_field(part)


async def _read_field(part: BodyPartReader) -> str:
    raw = bytearray()
    while not part.at_eof():
        raw += await part.read_chunk(64 * 1024)
        if len(raw) > MAX_FIELD_BYTES:
            raise ApiError(413, f"field {part.name} is over {MAX_FIELD_BYTES} bytes")
    return raw.decode("utf-8", errors="replace")


def _campaign(values: dict[str, str]) -> Campaign:
    errors: list[tuple[str, str]] = []
    sender = values.get("from", "")
    name, email = parseaddr(sender)  # it reads past a line break: check the raw value first
    if line_problem(sender) or not is_address(email) or line_problem(name):
        errors.append(("from", "must be an address, or Name <address> on one line, sent first"))
    subject = values.get("subject", "")
    if not subject.strip() or line_problem(subject):
        errors.append(("subject", "one non-empty line, sent before file"))
    if not values.get("text") and not values.get("html"):
        errors.append(("text", "text and/or html is required, sent before file"))
    batch_id = values.get("batch_id") or f"c-{uuid.uuid4().hex}"
    if not is_identifier(batch_id) or len(batch_id) > 160:
        errors.append(("batch_id", "1-160 characters of letters, digits and ._:@/+=-"))
    if errors:
        raise InvalidRequest(errors)
    return Campaign(
        sender=Address(email=email, name=name or None),
        subject=Template(subject),
        text=Template(values["text"]) if values.get("text") else None,
        html=Template(values["html"], escape=True) if values.get("html") else None,
        batch_id=batch_id,
        created=time.time(),
    )


class Reading:
    """One upload: records to messages, enqueued GROUP at a time, IN_FLIGHT groups at once."""

    def __init__(self, enqueuer: Enqueuer, tally: Tally, token: str, client: str) -> None:
        self._enqueuer = enqueuer
        self._tally = tally
        self._token = token
        self._client = client
        self._group: list[Outgoing] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(IN_FLIGHT)

    async def run(self, campaign: Campaign, file: BodyPartReader, limit: int) -> str:
        """Read and enqueue everything. Returns "done", "over" (more than `limit` rows: the
        rest not read) or "broken" (the multipart body broke off)."""
        columns: list[str] | None = None
        try:
            async for record in records(file.read_chunk):
                if columns is None:
                    columns = _header(record, campaign)
                    continue
                if record.number - 1 > limit:
                    return "over"
                await self._row(campaign, columns, record)
        except (ValueError, HttpProcessingError):
            return "broken"
        finally:
            await self._flush()
            await asyncio.gather(*self._tasks)
        if columns is None:
            raise InvalidRequest([("file", "is empty: a header row with `email` is needed")])
        return "done"

    async def _row(self, campaign: Campaign, columns: list[str], record: CsvRecord) -> None:
        try:
            message = _message(campaign, columns, record)
        except ValueError as exc:
            self._tally.rejected += 1
            if len(self._tally.rejected_rows) < MAX_LISTED_REJECTIONS:
                self._tally.rejected_rows.append({"row": record.number, "error": str(exc)})
            return
        self._group.append(message)
        if len(self._group) >= GROUP:
            await self._flush()

    async def _flush(self) -> None:
        group, self._group = self._group, []
        if not group:
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._submit(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _submit(self, group: list[Outgoing]) -> None:
        try:
            done = await self._enqueuer.submit(group, self._token, self._client)
        finally:
            self._slots.release()
        self._tally.accepted += len(done.queued)
        self._tally.skipped_duplicates += len(done.duplicates)
        self._tally.not_queued += len(done.not_queued)
        self._tally.suppressed += len(done.suppressed)


def _header(record: CsvRecord, campaign: Campaign) -> list[str]:
    if record.fields is None:
        raise InvalidRequest([("file", f"header row: {record.error}")])
    columns = [c.strip().lower() for c in record.fields]
    if "email" not in columns:
        raise InvalidRequest([("file", "the header row has no `email` column")])
    errors = [
        (name, f"unknown column {{{{{unknown}}}}}")
        for name, template in (
            ("subject", campaign.subject),
            ("text", campaign.text),
            ("html", campaign.html),
        )
        if template is not None
        for unknown in template.unknown(columns)
    ]
    if errors:
        raise InvalidRequest(errors)
    return columns


def _message(campaign: Campaign, columns: list[str], record: CsvRecord) -> Outgoing:
    """The message for one row, or ValueError saying what is wrong with it."""
    if record.fields is None:
        raise ValueError(record.error)
    if len(record.fields) != len(columns):
        raise ValueError(f"{len(record.fields)} fields, the header has {len(columns)}")
    values = dict(zip(columns, record.fields, strict=True))
    address = normalise(values["email"])
    if not is_address(address):
        raise ValueError("email: not a valid address")
    own = {k: values[k] for k in OVERRIDES if values.get(k)}
    subject = _pick(own, "subject", campaign.subject, values)
    if not subject:
        raise ValueError("subject: must be one non-empty line")
    one_line(subject, "subject")  # a MessageError, a ValueError that reads "field: reason"
    name = one_line(own.get("name", ""), "name") or None
    message_id = campaign_id(campaign.batch_id, address)
    email = Email(
        id=message_id,
        batch_id=campaign.batch_id,
        sender=campaign.sender,
        to=(Address(address, name),),
        subject=subject,
        text=_pick(own, "text", campaign.text, values) or None,
        html=_pick(own, "html", campaign.html, values, escape=True) or None,
        created_at=campaign.created,
    )
    if email.text is None and email.html is None:
        raise ValueError("text: text or html is required")
    try:
        body = encode_checked(email)
    except InvalidRequest as exc:
        raise ValueError("; ".join(f"{e['field']}: {e['error']}" for e in exc.errors)) from None
    return Outgoing(message_id, campaign.batch_id, address, body)


def _pick(
    own: dict[str, str],
    key: str,
    default: Template | None,
    values: dict[str, str],
    *,
    escape: bool = False,
) -> str:
    template = Template(own[key], escape) if key in own else default
    return template.render(values) if template is not None else ""


def normalise(address: str) -> str:
    """Trimmed, with the domain case-folded (the local part is the mailbox owner's)."""
    local, at, domain = address.strip().rpartition("@")
    return f"{local}{at}{domain.casefold()}" if at else address.strip()


def campaign_id(batch_id: str, address: str) -> str:
    digest = hashlib.sha256(f"{batch_id}\0{address}".encode()).hexdigest()
    return f"c-{digest[:32]}"
