"""Virtual keys: how they are made, how they are stored, and how a request presents one.

A key is `ik-` and 32 random bytes, url-safe base64 (43 characters): 256 bits, so a key
needs no salt and no slow hash; the store keeps its SHA-256 (hex) and a display prefix,
never the key. A request presents it as `Authorization: Bearer ik-...` (OpenAI clients)
or `x-api-key: ik-...` (Anthropic clients). Nothing here logs or returns a key except
`new_key`, whose caller shows it once.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping

import msgspec

__all__ = [
    "KEY_PREFIX",
    "NewKey",
    "display_prefix",
    "hash_key",
    "new_key",
    "new_key_id",
    "presented",
]

KEY_PREFIX = "ik-"
_RANDOM_BYTES = 32
_DISPLAY_CHARS = 8  # of the random part, after `ik-`: 48 of its 256 bits, enough to tell keys apart


class NewKey(msgspec.Struct, frozen=True):
    key: str  # shown once, to whoever created it
    hash: str  # what the store keeps
    prefix: str  # what lists show: `ik-` and the first characters


def hash_key(key: str) -> str:
    """The stored form of a key (or of anything presented as one: the same work for all)."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def display_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + _DISPLAY_CHARS]


def new_key() -> NewKey:
    key = KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)
    return NewKey(key=key, hash=hash_key(key), prefix=display_prefix(key))


def new_key_id() -> str:
    """A key's public id (what `keys revoke` takes): random, unrelated to the key."""
    return "key_" + secrets.token_hex(8)


def presented(headers: Mapping[str, str]) -> str:
    """The credential a request carries, or "" (then hashed and looked up all the same)."""
    auth = headers.get("authorization")
    if auth is not None and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("x-api-key", "").strip()
