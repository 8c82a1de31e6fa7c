"""API keys: a file of SHA-256 hex digests (`hash` or `name:hash` per line, `#` comments), and
the middleware that asks every `/v1` and `/graphql` request for `Authorization: Bearer <key>`.

The key presented is hashed and compared with every digest in constant time
(`hmac.compare_digest`, no early exit), so neither the keys nor their number leak through
timing. The key's name (never the key) is what the rest of the API sees, as `created_by`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from dispatcher.api.errors import ApiError, Handler
from dispatcher.config import ConfigError

CLIENT = web.RequestKey("client", str)
_HEX = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    digest: bytes


def hash_key(key: str) -> str:
    """What goes in the keys file for `key`."""
    return hashlib.sha256(key.encode()).hexdigest()


def load_keys(path: str) -> tuple[ApiKey, ...]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError("api.api_keys_file", f"cannot read {path}: {exc.strerror}") from None
    found = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, _, digest = text.rpartition(":")
        digest = digest.lower()
        name = name or f"key-{digest[:8]}"
        if not _HEX.match(digest) or not _NAME.match(name):
            raise ConfigError(
                "api.api_keys_file", f"line {number}: expected a SHA-256 hex, or name:hex"
            )
        found.append(ApiKey(name, bytes.fromhex(digest)))
    if not found:
        raise ConfigError("api.api_keys_file", f"{path} holds no key")
    return tuple(found)


def authenticate(keys: Sequence[ApiKey], header: str | None) -> str | None:
    """The name of the key in an `Authorization: Bearer` header, or None."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    digest = hashlib.sha256(token.strip().encode()).digest()
    found = None
    for key in keys:
        if hmac.compare_digest(key.digest, digest):
            found = key.name
    return found


def needs_key(request: web.Request) -> bool:
    if request.path.startswith("/v1/webhooks/"):
        return False  # providers sign their requests instead (dispatcher.api.webhooks)
    if request.path.startswith("/v1/"):
        return True
    if request.path == "/graphql":
        return not (
            request.method == "GET"
            and "text/html" in request.headers.get("Accept", "")
            and "query" not in request.query
        )  # the GraphiQL page itself is public; its queries are not
    return False


def auth_middleware(keys: Sequence[ApiKey]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if needs_key(request):
            name = authenticate(keys, request.headers.get("Authorization"))
            if name is None:
                raise ApiError(
                    401,
                    "missing or invalid API key: send Authorization: Bearer <key>",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            request[CLIENT] = name
        return await handler(request)

    return middleware
