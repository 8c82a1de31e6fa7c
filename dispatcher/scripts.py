"""Lua scripts from `dispatcher/lua/*.lua`, loaded once and called by SHA.

A call is data: a `Command` (`LuaScript.call` makes an EVALSHA), built once by its caller.
A batch of them is queued on a non-transactional pipeline, so it costs one round trip (redis-py's
own `register_script` adds a SCRIPT EXISTS trip to every pipeline). When Redis has lost its
script cache (a restart or failover), the same commands are sent again once after reloading.

An error reply that concerns one key only (`WRONGTYPE`, or a script error on that key's data) can
be returned in place with `isolate=True`, so the other calls of the batch still count; an error
that says Redis itself cannot serve (READONLY, OOM, MISCONF, LOADING, ...) is always raised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import NoScriptError, ResponseError

# One Redis or a Redis Cluster (`[redis] cluster = true`): every script touches one hash slot,
# so the same calls work on both.
RedisClient = Redis | RedisCluster
Command = tuple[str | int | bytes, ...]  # one Redis command: its name, then its arguments


def _lua(name: str) -> str:
    return resources.files("dispatcher").joinpath("lua", f"{name}.lua").read_text()


class LuaScript:
    """One script, after the shared preludes: always `lua/_clock.lua` (the `clock(now)` helper),
    then the ones named in `preludes` (`_breaker`, `_gcra`: rules several scripts share;
    `_index`: the status index helpers)."""

    def __init__(self, name: str, *preludes: str) -> None:
        self.name = name
        self.source = "".join(_lua(part) for part in ("_clock", *preludes, name))
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    def call(self, keys: Sequence[str], args: Sequence[str | int | bytes]) -> Command:
        """An EVALSHA of this script with `keys` and `args`."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


async def load(client: RedisClient, scripts: Sequence[LuaScript]) -> None:
    for script in scripts:
        await client.script_load(script.source)


def concerns_one_key(error: Exception) -> bool:
    """True for an error reply about one key's data, not about Redis as a whole."""
    if type(error) is not ResponseError:  # subclasses: READONLY, OOM, LOADING, NOSCRIPT, ...
        return False
    code = str(error).split(" ", 1)[0]
    if code.isalpha() and code.isupper() and code not in ("ERR", "WRONGTYPE"):
        return False  # a script re-raised Redis's own refusal (READONLY, OOM...), tagged ERR
    return code == "WRONGTYPE" or getattr(error, "status_code", None) == "ERR"


async def run_batch(
    client: RedisClient,
    scripts: Sequence[LuaScript],
    commands: Sequence[Command],
    *,
    isolate: bool = False,
) -> list[Any]:
    """Send `commands` in one round trip; reload `scripts` once. With `isolate`, errors that
    concern one key are returned in place of their reply."""
    [replies] = await execute(client, scripts, [commands])
    return checked(replies, isolate=isolate)


async def execute(
    client: RedisClient,
    scripts: Sequence[LuaScript],
    batches: Sequence[Sequence[Command]],
) -> list[list[Any]]:
    """The replies of each of `batches`, all queued on one pipeline and sent in one round trip
    (again once after the scripts are reloaded, when Redis answers NOSCRIPT). Error replies
    are returned in place; `checked` decides which of them to raise."""
    sizes = [len(commands) for commands in batches]
    for attempt in (1, 2):
        async with client.pipeline(transaction=False) as pipe:
            for commands in batches:
                for command in commands:
                    # execute_command: redis-py blocks `evalsha` on cluster pipelines, though it
                    # routes an EVALSHA by its keys like any other command.
                    pipe.execute_command(*command)
            try:
                flat: list[Any] = await pipe.execute(raise_on_error=False)
            except NoScriptError:
                if attempt == 2:
                    raise
                flat = [NoScriptError()]
        if attempt == 1 and any(isinstance(r, NoScriptError) for r in flat):
            await load(client, scripts)
            continue
        split, start = [], 0
        for size in sizes:
            split.append(flat[start : start + size])
            start += size
        return split
    raise AssertionError("unreachable")


def checked(replies: list[Any], *, isolate: bool) -> list[Any]:
    """`replies`, or the first error among them raised; with `isolate`, errors that concern
    one key stay in place."""
    for reply in replies:
        if isinstance(reply, Exception) and not (isolate and concerns_one_key(reply)):
            raise reply
    return replies
