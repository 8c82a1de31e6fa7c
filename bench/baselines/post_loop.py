"""Baseline (a): bare aiohttp POSTs at a fixed concurrency, alternating between the fake SendGrid
and Mailgun, with bodies encoded once up front. Its CPU per request is the HTTP floor the
dispatcher's own cost is compared with.

    python -m bench.baselines.post_loop --sendgrid URL --mailgun URL --count 10000 --concurrency 150
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import orjson
import uvloop

from bench.baselines import Measured, Window
from bench.stack import API_KEY, MAILGUN_DOMAIN
from dispatcher.dev.messages import email_doc
from dispatcher.message import decode
from providers import mailgun, sendgrid


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    body: bytes
    headers: dict[str, str]


def targets(sendgrid_url: str, mailgun_url: str) -> tuple[Target, Target]:
    """One prebuilt request per fake, in the wire format the dispatcher would send."""
    email = decode(orjson.dumps(email_doc(0, id="baseline-post")))
    return (
        Target(
            f"{sendgrid_url}/v3/mail/send",
            orjson.dumps(sendgrid.build(email)),
            {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        ),
        Target(
            f"{mailgun_url}/v3/{MAILGUN_DOMAIN}/messages",
            urllib.parse.urlencode(mailgun.build(email)).encode(),
            {
                "Authorization": mailgun.basic_auth("api", API_KEY),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        ),
    )


async def post_all(pair: Sequence[Target], count: int, concurrency: int) -> Measured:
    tickets = iter(range(count))
    failures = 0

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal failures
        for ticket in tickets:
            target = pair[ticket % len(pair)]
            async with http.post(target.url, data=target.body, headers=target.headers) as reply:
                await reply.read()
                failures += reply.status >= 300

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        window = Window()
        window.start()
        await asyncio.gather(*(worker(http) for _ in itertools.repeat(None, concurrency)))
        measured = window.stop(count - failures)
    if failures:
        raise RuntimeError(f"{failures} of {count} posts were not accepted")
    return measured


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.baselines.post_loop", description=__doc__
    )
    parser.add_argument("--sendgrid", required=True, help="fake SendGrid base URL")
    parser.add_argument("--mailgun", required=True, help="fake Mailgun base URL")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=150)
    args = parser.parse_args(argv)
    pair = targets(args.sendgrid, args.mailgun)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(post_all(pair, args.count, args.concurrency)).emit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
