"""`Idempotency-Key`: the same key and body get the same answer, once.

Per API client and key, a Redis hash (`dispatcher.keys.idempotency`, named by a SHA-256 of the
client's name and the key) holds the request's fingerprint, its state and, once done, its
response, for `idempotency_hours` from the first request. A running request holds a lease; a
second request meanwhile gets 409. A request that failed (503) or died lets the next one with
the same key resume: the ledger says which of its messages are still PENDING.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from dispatcher import keys
from dispatcher.scripts import LuaScript, RedisClient, load, run_batch

BEGIN, END = LuaScript("idem_begin"), LuaScript("idem_end")
SCRIPTS = (BEGIN, END)
MAX_KEY_LENGTH = 256


class Verdict(enum.StrEnum):
    NEW = "NEW"
    RESUME = "RESUME"
    MISMATCH = "MISMATCH"
    BUSY = "BUSY"
    DONE = "DONE"


@dataclass(frozen=True, slots=True)
class Begun:
    verdict: Verdict
    retry_after: float = 0.0  # seconds, when BUSY
    status: int = 0  # when DONE: the stored answer
    body: bytes = b""


class Idempotency:
    def __init__(
        self, client: RedisClient, prefix: str, ttl_seconds: int, lease_seconds: float = 60.0
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = str(ttl_seconds)
        self._lease = str(int(lease_seconds * 1000))

    async def load_scripts(self) -> None:
        await load(self._redis, SCRIPTS)

    @staticmethod
    def digest(client: str, key: str) -> str:
        return hashlib.sha256(f"{client}\0{key}".encode()).hexdigest()

    async def begin(self, digest: str, fingerprint: str, token: str) -> Begun:
        [reply] = await run_batch(
            self._redis,
            SCRIPTS,
            [
                BEGIN.call(
                    [keys.idempotency(self._prefix, digest)],
                    [fingerprint, token, "", self._lease, self._ttl],
                )
            ],
        )
        verdict, first, second = (_bytes(v) for v in reply)
        kind = Verdict(verdict.decode())
        if kind is Verdict.BUSY:
            return Begun(kind, retry_after=int(first) / 1000)
        if kind is Verdict.DONE:
            return Begun(kind, status=int(first), body=second)
        return Begun(kind)

    async def finish(self, digest: str, token: str, status: int, body: bytes | None) -> None:
        """Keep the answer (`body`), or with None let the next request resume."""
        state = "done" if body is not None else "failed"
        await run_batch(
            self._redis,
            SCRIPTS,
            [
                END.call(
                    [keys.idempotency(self._prefix, digest)],
                    [token, state, str(status), body or b""],
                )
            ],
        )


def valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isprintable() and key.isascii()


def _bytes(value: bytes | str | int) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()
