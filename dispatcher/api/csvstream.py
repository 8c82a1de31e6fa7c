"""CSV records from an async byte stream, one at a time, never the whole file in memory.

Bytes are split into lines; lines are joined while a quoted field is open (an odd count of `"`
so far: RFC 4180 doubles a quote inside a field, so the parity tells), and each complete record
is parsed by Python's `csv` module. Each line is decoded as UTF-8 on its own (a leading BOM is
dropped), so one badly encoded record is rejected alone. CRLF or LF.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

CHUNK = 64 * 1024
MAX_RECORD_BYTES = 1024 * 1024
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class CsvRecord:
    number: int  # 1-based record number; the header is record 1
    fields: list[str] | None  # None when `error` says why it could not be read
    error: str = ""


async def records(read_chunk: Callable[[int], Awaitable[bytes]]) -> AsyncIterator[CsvRecord]:
    """Every record of the stream `read_chunk(size)` yields (b"" at its end)."""
    pending = bytearray()  # a record under way: complete lines whose quotes are still open
    tail = b""  # a line under way
    number = 0
    first = True
    while True:
        chunk = await read_chunk(CHUNK)
        data = tail + chunk
        if first:
            if chunk and len(data) < len(BOM):
                tail = data
                continue
            data, first = data.removeprefix(BOM), False
        lines = data.split(b"\n")
        tail = lines.pop() if chunk else b""
        for line in lines:
            if not pending and not line.strip():
                continue  # blank lines between records
            pending += line + b"\n"
            if pending.count(b'"') % 2 == 0 or len(pending) > MAX_RECORD_BYTES:
                number += 1
                yield _parse(number, bytes(pending))
                pending.clear()
        if len(tail) > MAX_RECORD_BYTES:
            number += 1
            yield CsvRecord(number, None, f"a line over {MAX_RECORD_BYTES} bytes")
            tail = b""
        if not chunk:
            break
    if pending:
        number += 1
        yield CsvRecord(number, None, "a quoted field is not closed at the end of the file")


def _parse(number: int, raw: bytes) -> CsvRecord:
    if len(raw) > MAX_RECORD_BYTES:
        return CsvRecord(number, None, f"a record over {MAX_RECORD_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return CsvRecord(number, None, "not UTF-8")
    try:
        rows = list(csv.reader([text.rstrip("\r\n")], strict=True))
    except csv.Error as exc:
        return CsvRecord(number, None, f"not valid CSV ({exc})")
    return CsvRecord(number, rows[0] if rows else [])
