"""Hostile request bodies refused before anything reads or forwards them.

msgspec validates what it decodes into typed fields, but the parts a request head keeps
as `msgspec.Raw` (messages, tools, unknown fields) are only skipped: their UTF-8 is not
checked, and its recursion guard turns a deeply nested body into a `RecursionError`. So
every inbound body passes two cheap byte-level checks first:

- UTF-8: `bytes.isascii()` (C, word at a time) answers for most bodies; only a body
  with non-ASCII bytes is decoded once (measured: ~0.1 µs a kB, 4 µs for 40 kB).
- Depth: arrays and objects nested deeper than `MAX_DEPTH` (64) are refused, found by
  C-level passes over the bytes (no per-token Python work): see `check_depth`.

The fields the gateway itself reads get sane ranges (the annotated types below, used by
the inbound formats' Structs: `max_tokens`, `max_completion_tokens`, `n`, `temperature`,
`top_p`, `dimensions`) and `model` must be a non-empty printable name. Each refusal is
a `GatewayError(400)` naming the problem, never a traceback. This module does no I/O
and never logs: the body is the caller's.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

from .errors import GatewayError

__all__ = [
    "MAX_DEPTH",
    "MAX_MODEL_LENGTH",
    "Dimensions",
    "MaxTokens",
    "N",
    "Probability",
    "Temperature",
    "check_body",
    "check_depth",
    "check_model",
    "check_utf8",
    "invalid_request",
]

MAX_DEPTH = 64  # arrays and objects inside each other; real requests stay below ~12
MAX_MODEL_LENGTH = 256

# The ranges of the numeric fields the gateway reads (and translates for other formats).
# int32 is what typed upstreams and clients decode token counts into.
MaxTokens = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
N = Annotated[int, msgspec.Meta(ge=1, le=128)]  # OpenAI's documented maximum
Temperature = Annotated[float, msgspec.Meta(ge=0.0, le=2.0)]  # OpenAI's range
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]  # top_p; Anthropic's temperature
Dimensions = Annotated[int, msgspec.Meta(ge=1, le=65_536)]


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, "invalid_request_error", message, param=param)


def check_utf8(raw: bytes) -> None:
    """Refuse a body that is not UTF-8 (surrogates encoded as UTF-8 included)."""
    if raw.isascii():
        return
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(f"request body is not valid UTF-8 (at byte {exc.start})") from None


# `\\` and `\"` inside strings: once they are gone, every quote left delimits a string.
_ESCAPE = re.compile(rb'\\[\\"]')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_PARENS = bytes.maketrans(b"[{]}", b"(())")
# Below this size two `count`s are cheaper than `translate`'s fixed cost (it builds its
# deletion table on every call, ~1 µs); above it the counts cost more than they save.
_SMALL = 4096


def check_depth(raw: bytes, limit: int = MAX_DEPTH) -> None:
    """Refuse arrays and objects nested deeper than `limit`; brackets in strings do not
    count. Cost, measured: ~0.5 µs for a small chat request; 50-80 µs for a 40 kB
    request with a long system prompt and 30 tools (C-level byte passes, ~1.5 µs a kB:
    about what a full msgspec decode of the same body costs).

    Escapes are dropped and the body is reduced to its quotes and brackets; when it holds
    no more than `limit` opening brackets it cannot nest deeper. Otherwise strings are
    dropped, and the brackets left are peeled: each round removes every innermost pair,
    so an empty rest after at most `limit` rounds proves the depth is within it. A rest
    that stops shrinking is unbalanced (malformed JSON the decoder reports itself),
    unless it opens more than `limit` levels on its own.
    """
    if len(raw) <= limit:
        return
    if len(raw) < _SMALL and raw.count(b"[") + raw.count(b"{") <= limit:
        return  # no more openers than the limit, strings included: the common chat request
    if b"\\" in raw:
        raw = _ESCAPE.sub(b"", raw)
    kept = raw.translate(None, _NOT_STRUCTURE)
    if kept.count(b"[") + kept.count(b"{") <= limit:
        return
    # Dropping two adjacent quotes never changes which brackets are inside a string (the
    # parity of the quotes before each bracket), and removes most strings in one pass.
    kept = kept.replace(b'""', b"")
    if b'"' in kept:
        kept = b"".join(kept.split(b'"')[::2])
    parens = kept.translate(_PARENS)
    if parens.count(b"(") <= limit:
        return
    for _ in range(limit):
        if not parens:
            return
        peeled = parens.replace(b"()", b"")
        if len(peeled) == len(parens):  # unbalanced: nothing more to peel
            if parens.count(b"(") <= limit:
                return
            break
        parens = peeled
    if parens:
        raise _bad(f"request body nests arrays and objects deeper than {limit} levels")


def check_body(raw: bytes) -> None:
    """The byte-level checks every inbound body passes before it is decoded."""
    check_utf8(raw)
    check_depth(raw)


def check_model(model: str, param: str = "model") -> None:
    """A model name is non-empty, at most 256 characters, and printable (no NUL, no
    control characters: it goes into logs, headers of records and upstream requests)."""
    if not model or not model.strip():
        raise _bad(f"`{param}` must not be empty", param)
    if len(model) > MAX_MODEL_LENGTH:
        raise _bad(f"`{param}` is longer than {MAX_MODEL_LENGTH} characters", param)
    if not model.isprintable():
        raise _bad(f"`{param}` contains control characters (NUL or similar)", param)


def invalid_request(exc: msgspec.MsgspecError | RecursionError) -> GatewayError:
    """A msgspec decode error as a 400 that names the field."""
    if isinstance(exc, RecursionError):
        return _bad("request body nests arrays and objects too deeply")
    text = str(exc)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return _bad(f"request body is not valid JSON: {text}")
    param = None
    if "`" in text:
        param = text.split("`")[1] if "field `" in text else None
    if " - at `$." in text:
        message, path = text.split(" - at `$.", 1)
        path = path.rstrip("`")
        param = path
        text = f"invalid field `{path}`: {message}"
    elif text.startswith("Object missing required field"):
        text = "missing required field " + text.split("field ", 1)[1]
    elif text.startswith("Expected `object`, got"):
        text = "request body must be a JSON object, got " + text.rsplit("got ", 1)[1].strip("`")
    return _bad(text, param)
