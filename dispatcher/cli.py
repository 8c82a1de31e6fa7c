"""`dispatcher` command line: run, api, check-config, status, demo."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

import uvloop

from dispatcher import config, logs
from providers.base import ProviderConfigError


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from dispatcher.dev.demo import run_demo

            return _run(run_demo(messages=args.messages))
        settings = config.load(args.config)
        from strategies import build_strategy

        build_strategy(settings.routing.strategy)
    except ValueError as exc:  # ConfigError, unknown strategy or provider type
        print(f"dispatcher: {exc}", file=sys.stderr)
        return 2
    if args.command == "status":
        from dispatcher.status import read_status, render

        rows: list[dict[str, Any]] = []

        async def status() -> None:
            rows.extend(await read_status(settings))

        code = _run(status())
        print(render(rows, args.json))
        return code
    if args.command == "api":
        from dispatcher.api.app import run as run_api

        try:
            run_api(settings)
        except config.ConfigError as exc:
            print(f"dispatcher: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "check-config":
        print(f"ok: {len(settings.providers)} providers, strategy {settings.routing.strategy}")
        return 0
    logs.configure(settings.log.level)
    from dispatcher.app import run

    return _run(run(settings))


def _run(work: Coroutine[Any, Any, object]) -> int:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            runner.run(work)
        except (config.ConfigError, ProviderConfigError) as exc:
            print(f"dispatcher: {exc}", file=sys.stderr)
            return 2
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dispatcher", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "consume the queue and send"),
        ("api", "serve the intake API (send, campaigns, status, GraphQL, docs)"),
        ("check-config", "validate a config file and exit"),
        ("status", "provider health shared by every replica"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--config", help="TOML file (default: $DISPATCHER_CONFIG)")
        if name == "status":
            sub.add_argument("--json", action="store_true", help="JSON instead of a table")
    demo = commands.add_parser("demo", help="local stack, 5,000 messages, a live view")
    demo.add_argument("--messages", type=int, default=5000)
    return parser
