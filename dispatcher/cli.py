"""`dispatcher` command line: run, api, check-config, status, provider, dlq, top, demo."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import uvloop

from dispatcher import config, logs
from dispatcher.config import Settings
from providers.base import ProviderConfigError

Command = Callable[[Settings, argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from dispatcher.dev.demo import run_demo

        return _run(run_demo(messages=args.messages))
    try:
        settings = config.load(getattr(args, "path", None) or args.config)
        from strategies import build_strategy

        build_strategy(settings.routing.strategy)
    except ValueError as exc:  # ConfigError, unknown strategy or provider type
        return _fail(exc)
    return COMMANDS[args.command](settings, args)


def _fail(exc: Exception | str) -> int:
    print(f"dispatcher: {exc}", file=sys.stderr)
    return 2


def _run(work: Coroutine[Any, Any, object]) -> int:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            runner.run(work)
        except (config.ConfigError, ProviderConfigError) as exc:
            return _fail(exc)
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    logs.configure(settings.log.level)
    from dispatcher.app import run

    return _run(run(settings))


def _api(settings: Settings, args: argparse.Namespace) -> int:
    from dispatcher.api.app import run as run_api

    try:
        run_api(settings)
    except config.ConfigError as exc:
        return _fail(exc)
    return 0


def _check_config(settings: Settings, args: argparse.Namespace) -> int:
    from dispatcher.ops.show_config import effective, render

    print(render(effective(settings), args.json), end="")
    ok = f"ok: {len(settings.providers)} providers, strategy {settings.routing.strategy}"
    print(ok, file=sys.stderr)
    return 0


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from dispatcher.status import read_status, render

    rows: list[dict[str, Any]] = []

    async def status() -> None:
        rows.extend(await read_status(settings))

    code = _run(status())
    print(render(rows, args.json))
    return code


def _provider(settings: Settings, args: argparse.Namespace) -> int:
    from redis.asyncio import Redis

    from dispatcher.ops.overrides import DEFAULT_SECONDS, apply, parse_duration

    if args.name not in {p.name for p in settings.providers}:
        return _fail(f"no provider named {args.name!r} in the config")
    try:
        seconds = parse_duration(args.duration) if args.duration else DEFAULT_SECONDS
    except ValueError as exc:
        return _fail(exc)

    async def work() -> None:
        redis = Redis.from_url(settings.redis.url)
        try:
            prefix = settings.redis.key_prefix
            print(await apply(redis, prefix, args.name, args.action, seconds))
        finally:
            await redis.aclose()

    return _run(work())


def _dlq(settings: Settings, args: argparse.Namespace) -> int:
    from dispatcher.ops.dlq_cli import parse_rate, run_dlq

    try:
        rate = parse_rate(args.rate)
    except ValueError as exc:
        return _fail(exc)
    out: list[str] = []

    async def work() -> None:
        out.append(await run_dlq(settings, args, rate))

    code = _run(work())
    print(*out, sep="\n")
    return code


def _top(settings: Settings, args: argparse.Namespace) -> int:
    from redis.asyncio import Redis
    from rich.console import Console

    from dispatcher.health.redis import RedisHealth
    from dispatcher.ops.top import TopSource, run_top

    async def work() -> None:
        redis = Redis.from_url(settings.redis.url)
        prefix, routing = settings.redis.key_prefix, settings.routing
        health = RedisHealth(redis, prefix, settings.providers, routing)
        try:
            await run_top(TopSource(health, settings, args.metrics), Console(), args.frames)
        finally:
            await redis.aclose()

    try:
        return _run(work())
    except KeyboardInterrupt:
        return 0


COMMANDS: dict[str, Command] = {
    "run": _worker,
    "api": _api,
    "check-config": _check_config,
    "status": _status,
    "provider": _provider,
    "dlq": _dlq,
    "top": _top,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dispatcher", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    subs = {
        name: commands.add_parser(name, help=text)
        for name, text in (
            ("run", "consume the queue and send"),
            ("api", "serve the intake API (send, campaigns, status, GraphQL, docs)"),
            ("check-config", "validate a config file, print it with secrets masked"),
            ("status", "provider health shared by every replica"),
            ("provider", "drain, resume, force open or closed a provider (every replica)"),
            ("dlq", "dead-letter queue: counts by reason, ids, redrive at a bounded rate"),
            ("top", "live view: msg/s, in flight, per-provider share, latency, errors, breakers"),
        )
    }
    for sub in subs.values():
        sub.add_argument("--config", help="TOML file (default: $DISPATCHER_CONFIG)")
    subs["check-config"].add_argument("path", nargs="?", help="TOML file (or --config)")
    for name in ("status", "check-config"):
        subs[name].add_argument("--json", action="store_true", help="JSON instead of a table")
    provider = subs["provider"]
    provider.add_argument("action", choices=("drain", "resume", "open", "close"))
    provider.add_argument("name", help="the provider's name in the config")
    provider.add_argument(
        "--for", dest="duration", help="how long it lasts: 90s, 15m, 2h, 1d (default 1h)"
    )
    from dispatcher.ops.dlq_cli import add_arguments

    add_arguments(subs["dlq"])
    subs["top"].add_argument("--metrics", help="a worker's probe port, http://host:9100")
    subs["top"].add_argument("--frames", type=int, default=0, help="stop after N (0: never)")
    demo = commands.add_parser("demo", help="local stack, 5,000 messages, a live view")
    demo.add_argument("--messages", type=int, default=5000)
    return parser
