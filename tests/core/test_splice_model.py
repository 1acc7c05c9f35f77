"""Forwarding a routed model rewrites only the model's value in the client's bytes
(`_splice_model`), exactly where the regex finds `"model": <old>` once, else leaves the
body to a re-encode: the compiled pattern is now made once per model name, and the
answer is the one the code gave when it compiled it per request (`_before`)."""

from __future__ import annotations

import re

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from interlock.core.context import _model_pattern, _splice_model

_encode = msgspec.json.Encoder().encode


def _before(raw: bytes, old: str, new: str) -> bytes | None:
    needle = _encode(old)
    pattern = re.compile(rb'"model"\s*:\s*' + re.escape(needle))
    if len(pattern.findall(raw)) != 1:
        return None
    match = pattern.search(raw)
    assert match is not None
    return raw[: match.end() - len(needle)] + _encode(new) + raw[match.end() :]


NAMES = st.sampled_from(["auto", "gpt-4o", 'we"ird\\', "\u00e9", "a.b*c", ""]) | st.text(max_size=6)
SPACES = st.sampled_from(["", " ", "\n\t ", "  "])


@given(
    NAMES,
    NAMES,
    st.lists(st.tuples(SPACES, SPACES, NAMES), min_size=0, max_size=3),
    st.sampled_from(['"x":1', '"metadata":{"model":"auto"}', '"models":"auto"']),
)
def test_the_spliced_body_is_what_it_was(
    old: str, new: str, models: list[tuple[str, str, str]], other: str
) -> None:
    fields = [f'"model"{a}:{b}'.encode() + _encode(name) for a, b, name in models]
    raw = b"{" + b",".join([*fields, other.encode()]) + b"}"
    assert _splice_model(raw, old, new) == _before(raw, old, new)


def test_one_pattern_per_model_name_and_the_cache_is_bounded() -> None:
    assert _model_pattern("auto") is _model_pattern("auto")
    for i in range(300):
        _model_pattern(f"m{i}")
    assert _model_pattern.cache_info().currsize <= 256
    assert _splice_model(b'{"model": "auto", "n": 1}', "auto", "gpt-4o") == (
        b'{"model": "gpt-4o", "n": 1}'
    )
