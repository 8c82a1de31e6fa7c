"""`dispatcher dlq stats|show|redrive`: the command around `dispatcher.ops.dlq`."""

from __future__ import annotations

import argparse
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from dispatcher.app import open_redis, open_sqs
from dispatcher.config import ConfigError, Settings
from dispatcher.ops.dlq import Target, by_reason, peek, redrive
from dispatcher.queue import resolve_dead_letter_url

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/s)?\s*$")


def parse_rate(text: str) -> float:
    """Messages per second from `10/s` or `10`; ValueError otherwise."""
    found = _RATE.match(text)
    if not found or float(found.group(1)) <= 0:
        raise ValueError(f"not a rate: {text!r} (use e.g. 10/s)")
    return float(found.group(1))


@asynccontextmanager
async def _dlq(settings: Settings) -> AsyncIterator[tuple[Any, str]]:
    async with open_sqs(settings) as sqs:
        url = settings.queue.dead_letter_url or await resolve_dead_letter_url(
            sqs, settings.queue.url
        )
        if not url:
            raise ConfigError("queue.dead_letter_url", "is required: the queue names no DLQ")
        yield sqs, url


async def run_dlq(settings: Settings, args: argparse.Namespace, rate: float) -> str:
    """Carry out one `dlq` action; returns what to print."""
    async with _dlq(settings) as (sqs, url):
        if args.action == "redrive":
            redis = open_redis(settings.redis)
            ttl = settings.dispatch.record_ttl_days * 86_400
            target = Target(url, settings.queue.url, settings.redis.key_prefix, ttl)
            try:
                done = await redrive(sqs, redis, target, rate, args.limit)
            finally:
                await redis.aclose()
            kept = ", ".join(f"{n} {why}" for why, n in sorted(done.kept.items())) or "none"
            return f"redriven {done.moved}; kept in the DLQ: {kept}"
        letters = await peek(sqs, url, args.limit)
    if args.action == "stats":
        counts = by_reason(letters).most_common()
        if args.json:
            return orjson.dumps({"total": len(letters), "by_reason": dict(counts)}).decode()
        return "\n".join([f"{len(letters)} messages", *(f"{n:>7}  {r}" for r, n in counts)])
    rows = [{"id": d.message_id, "sqs_id": d.sqs_id, "reason": d.reason} for d in letters]
    if args.json:
        return orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode()
    return "\n".join(f"{r['id'] or '-'}\t{r['sqs_id']}\t{r['reason']}" for r in rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("stats", "show", "redrive"))
    parser.add_argument("--rate", default="10/s", help="redrive: messages a second (10/s)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many (0: all)")
    parser.add_argument("--json", action="store_true", help="stats, show: JSON")
