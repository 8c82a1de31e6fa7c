"""Run one fake provider as a process: `python -m dispatcher.dev.fakes sendgrid --port 8025`.

Prints one line, `<kind> listening on http://127.0.0.1:PORT`, once it accepts connections
(with `--port 0` that line tells the free port chosen), then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from dispatcher.dev.fakes import FAKES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dispatcher.dev.fakes", description=__doc__)
    parser.add_argument("kind", choices=sorted(FAKES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="the key the fake accepts")
    parser.add_argument("--domain", default="mg.example.com", help="mailgun only")
    parser.add_argument("--seed", type=int, default=0, help="for fractional faults")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    options: dict[str, Any] = {"host": args.host, "port": args.port, "seed": args.seed}
    if args.api_key is not None:
        options["api_key"] = args.api_key
    if args.kind == "mailgun":
        options["domain"] = args.domain
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with FAKES[args.kind](**options) as fake:
        print(f"{args.kind} listening on {fake.base_url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
