"""Client CPU per Amazon SES send, against a raw POST of the same body, in the same run.

    python -m bench.ses_cost [--sends N] [--concurrency C]

The fake SES (`python -m dispatcher.dev.fakes ses`, its own process) answers at once. This
process then makes N sends three ways, C at a time, measuring its own CPU (`time.process_time`)
for each:

    raw POST      aiohttp posts the SendEmail JSON body, unsigned: the floor
    dispatcher    `providers.ses.Ses.send`: the body built, SigV4-signed by botocore, posted
                  over the shared aiohttp session
    aiobotocore   `sesv2.send_email` on an aiobotocore client (how SES was sent before)

and prints CPU ms per send and each ratio to the raw POST. The target is dispatcher <= 2x.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from bench.stack import API_KEY, FakeProvider
from dispatcher.message import Address, Email
from providers.ses import Ses, SesOptions, build

RESULTS = Path(__file__).resolve().parent / "results"

EMAIL = Email(
    id="bench-ses-1",
    sender=Address("shop@example.com", "Shop"),
    to=(Address("ann@example.org", "Ann"),),
    subject="Your receipt",
    text="Thanks for your order." * 20,
    html="<p>Thanks for your order.</p>" * 20,
    tags=(("kind", "receipt"),),
)


async def cpu_per_call(call: Callable[[], Awaitable[object]], sends: int, width: int) -> float:
    """CPU ms of this process per call, `width` calls at a time, after a short warm-up."""
    for _ in range(20):
        await call()
    left = sends

    async def lane() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    started = time.process_time()
    await asyncio.gather(*(lane() for _ in range(width)))
    return 1000 * (time.process_time() - started) / sends


async def measure(url: str, sends: int, width: int) -> dict[str, float]:
    os.environ.update({"AWS_ACCESS_KEY_ID": API_KEY, "AWS_SECRET_ACCESS_KEY": "bench"})
    body = orjson.dumps(build(EMAIL))
    results: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=width)) as http:
        post_url = f"{url}/v2/email/outbound-emails"

        async def raw() -> None:
            async with http.post(post_url, data=body) as response:
                await response.read()

        ses = await Ses.open("ses", 10.0, SesOptions(endpoint_url=url), http)

        async def dispatcher() -> None:
            outcome = await ses.send(EMAIL)
            assert outcome.provider_message_id, outcome

        config = AioConfig(max_pool_connections=width, retries={"total_max_attempts": 1})
        async with get_session().create_client(
            "sesv2", region_name="us-east-1", endpoint_url=url, config=config
        ) as client:

            async def boto() -> None:
                await client.send_email(**build(EMAIL))

            for name, call in (
                ("raw POST", raw),
                ("dispatcher", dispatcher),
                ("aiobotocore", boto),
            ):
                results[name] = await cpu_per_call(call, sends, width)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=None, help="default 4000 (quick 1000)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "ses_cost.md")
    args = parser.parse_args()
    sends = args.sends or (1000 if args.quick else 4000)
    with FakeProvider("ses") as fake:
        results = asyncio.run(measure(fake.base_url, sends, args.concurrency))
    floor = results["raw POST"]
    verdict = "met" if results["dispatcher"] <= 2 * floor else "NOT met"
    lines = [
        f"`python -m bench.ses_cost --sends {sends} --concurrency {args.concurrency}` (the fake",
        "SES answers at once; CPU of the sending process only)",
        "",
        "| client | CPU ms per send | vs raw POST |",
        "|---|---|---|",
        *(f"| {name} | {cost:.3f} | {cost / floor:.2f}x |" for name, cost in results.items()),
        "",
        f"Target: dispatcher within 2x of a raw POST: **{verdict}**.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
