"""structlog set-up: JSON lines (orjson) to stdout, ISO UTC timestamps, one canonical line per
send. Recipient addresses, subjects and bodies are never logged; `mask` hides an address when a
log line must point at one."""

from __future__ import annotations

import logging
import sys
from typing import BinaryIO

import orjson
import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(level: str = "info", stream: BinaryIO | None = None) -> None:
    """JSON lines at `level` and above to `stream` (default: stdout)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.BytesLoggerFactory(stream or sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )


def mask(address: str) -> str:
    """`ann@example.org` -> `a***@example.org`."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
