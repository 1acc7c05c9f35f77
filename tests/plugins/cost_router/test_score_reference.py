"""The faster extraction and weighting give exactly what they gave before: generated
bodies of every shape score.py reads (chat, Anthropic, Responses, broken ones), texts
full of cue phrases, code, separators and non-ASCII letters, compared with the code as
it was (reference_score.py): the same Features, the same score to the bit, the same
tier and reason."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from interlock.plugins.cost_router import score as live
from interlock.plugins.cost_router.decide import Routes, Tier, choose, routes_for, tier_of
from interlock.plugins.cost_router.decide import Settings as RouterSettings

from . import reference_score as before

PHRASES = [*live._STRONG, *live._WEAK, *live._CODE_WORDS]
# Words around the phrases: first words of phrases alone, case, digits and `+`, and
# letters that lower-case to ASCII (the Kelvin sign: "thin\u212a" is "think").
WORDS = (  # noqa: SIM905 (one line of words reads better than forty)
    "the in a depth time step by design edge trade off offs root cause pros and cons think "
    "hard unit test code c++ x+y 42 Python3 SQL Prove STEP \u212a \u0130 stra\u00dfe "
    "\u00e9t\u00e9 \U0001f600 \u00b2 \u0660 \uff21 \ufb03 thin\u212a stac\u212a \u212aey"
).split()
SEPARATORS = [" ", "  ", "-", "\n", "\t", ", ", "_", "+", ".", "\u00a0", "\u2028", "/", "'"]
CODE_LINES = [
    *(  # noqa: SIM905
        "def f(x):|class A:|import os|from a.b import c|#include <x>|const a = 1|let b|var c|"
        "public void|fn main()|func f()|SELECT * FROM t|return x|if (a) {|for (;;)|while (1)|}|"
        "x = 1;|   indented;|```|```python"
    ).split("|")
]


@st.composite
def phrases(draw: st.DrawFn) -> str:
    """A cue phrase as people write it: "Step-by-step", "trade-offs", "THIN\u212a hard"."""
    words = draw(st.sampled_from(PHRASES)).split(" ")
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(words), max_size=len(words)))
    text = "".join(w + s for w, s in zip(words, seps, strict=True))[: -len(seps[-1])]
    case = draw(st.sampled_from([str, str.upper, str.title, str.capitalize]))
    return case(text).replace(*draw(st.sampled_from([("", ""), ("k", "\u212a"), ("K", "\u212a")])))


@st.composite
def texts(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(
            st.sampled_from(PHRASES)
            | st.sampled_from(WORDS)
            | phrases()
            | st.sampled_from(CODE_LINES)
            | st.text(max_size=8),
            max_size=12,
        )
    )
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(parts), max_size=len(parts)))
    text = "".join(p + s for p, s in zip(parts, seps, strict=True))
    if draw(st.integers(0, 9)) == 0:  # longer than the head and tail that are scanned
        filler = draw(st.sampled_from(["lorem ipsum ", "x" * 7 + "\n", "d\u00e9j\u00e0 vu "]))
        where = draw(st.sampled_from(["head", "tail", "both"]))
        pad = filler * draw(st.integers(100, 400))
        text = {"head": pad + text, "tail": text + pad, "both": pad + text + pad}[where]
    return text


JUNK = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
)


def contents() -> st.SearchStrategy[Any]:
    block = st.recursive(
        texts()
        | st.fixed_dictionaries({"type": st.just("text"), "text": texts()})
        | st.fixed_dictionaries({"type": st.sampled_from(["input_text", "image"]), "text": JUNK}),
        lambda inner: st.fixed_dictionaries(
            {"type": st.just("tool_result"), "content": texts() | st.lists(inner, max_size=3)}
        ),
        max_leaves=4,
    )
    return texts() | st.lists(block, max_size=3) | JUNK


ROLES = st.sampled_from(["user", "assistant", "user", "assistant", "system", "tool"]) | JUNK


def messages() -> st.SearchStrategy[Any]:
    message = st.fixed_dictionaries({"role": ROLES, "content": contents()}) | st.fixed_dictionaries(
        {}, optional={"role": ROLES, "content": contents()}
    )
    return st.lists(message, max_size=6)


def input_items() -> st.SearchStrategy[Any]:
    item = (
        st.fixed_dictionaries(
            {"role": ROLES}, optional={"type": st.just("message"), "content": contents()}
        )
        | st.fixed_dictionaries(
            {"type": st.just("function_call_output")}, optional={"output": contents()}
        )
        | JUNK
    )
    return texts() | st.lists(item, max_size=4) | JUNK


CAPS = st.integers(-2, 40_000) | st.booleans() | st.floats(0, 5e4) | st.just("100") | st.none()
FORMATS = st.fixed_dictionaries(
    {"type": st.sampled_from(["json_schema", "json_object", "text", "x"]) | JUNK}
) | st.fixed_dictionaries({})
EFFORTS = st.sampled_from(["low", "medium", "high", "max", ""]) | JUNK
TOOL = st.fixed_dictionaries({"type": st.just("function"), "name": st.text(max_size=30)})


def chat() -> st.SearchStrategy[Any]:
    """The common case: turns of plain text, ending with the user's."""
    turn = st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant"]), "content": texts()}
    )
    last = st.fixed_dictionaries({"role": st.just("user"), "content": texts()})
    return st.builds(lambda turns, end: [*turns, end], st.lists(turn, max_size=12), last)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Bodies of the shape score.py decodes (a body that does not decode, a list where
    a string is due, is tested apart: it only gets a size)."""
    doc: dict[str, Any] = {"model": "auto"}
    if draw(st.integers(0, 3)):
        doc["messages"] = draw(chat() | messages())
    optional: dict[str, st.SearchStrategy[Any]] = {
        "system": contents(),
        "instructions": contents(),
        "input": input_items(),
        "tools": st.lists(TOOL, max_size=7) | st.none(),
        "functions": st.lists(TOOL, max_size=3),
        "response_format": FORMATS | JUNK,
        "max_tokens": CAPS,
        "max_completion_tokens": CAPS,
        "max_output_tokens": CAPS,
        "reasoning_effort": EFFORTS,
        "thinking": st.fixed_dictionaries({"type": st.sampled_from(["enabled", "disabled"])})
        | JUNK,
        "text": st.fixed_dictionaries({}, optional={"format": FORMATS | JUNK}) | JUNK,
        "reasoning": st.fixed_dictionaries({}, optional={"effort": EFFORTS}) | JUNK,
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=6)):
        doc[key] = draw(optional[key])
    return doc


WEIGHT = st.floats(0, 3) | st.sampled_from([0.0, -0.0, 1e308, float("inf"), float("nan")])
VECTORS = st.tuples(*[WEIGHT] * len(live.FEATURES))


def chat_of(text: str) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": text}]}


def same_float(a: float, b: float) -> bool:
    return repr(a) == repr(b)  # nan equals nan, -0.0 differs from 0.0


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(bodies(), VECTORS)
@example(chat_of("Go in depth, STEP-by-step; pros and  cons; thin\u212a hard"), None)
@example({"model": "auto", "messages": [{"role": "user", "content": "go in depth"}]}, None)
@example(
    {"model": "auto", "messages": [{"role": "user", "content": "In-Depth, STEP-by-step"}]}, None
)
@example(
    {"model": "auto", "messages": [{"role": "user", "content": "\u212aeep it: pros & cons"}]}, None
)
def test_extract_and_value_are_what_they_were(doc: dict[str, Any], weights: Any) -> None:
    raw = msgspec.json.encode(doc)
    features = live.extract(raw)
    assert features == before.extract(raw)
    vector = live.DEFAULT_VECTOR if weights is None else weights
    assert same_float(live.value(features, vector), before.value(features, vector))
    assert live.signal_values(features) == before.signal_values(features)


@SETTINGS
@given(
    st.binary(max_size=200)
    | st.builds(lambda d: msgspec.json.encode(d)[:-1], bodies())
    | st.builds(
        lambda d, key, junk: msgspec.json.encode({**d, key: junk}),
        bodies(),
        st.sampled_from(["messages", "tools", "functions"]),
        JUNK,
    )
)
def test_bodies_that_do_not_decode_are_what_they_were(raw: bytes) -> None:
    assert live.extract(raw) == before.extract(raw)


@st.composite
def tier_lists(draw: st.DrawFn) -> tuple[Tier, ...]:
    bounds = draw(st.lists(st.floats(-1, 2, allow_nan=False), min_size=1, max_size=4, unique=True))
    return tuple(Tier(below, f"m{i}") for i, below in enumerate(sorted(bounds)))


@given(tier_lists(), st.floats(0, 1) | st.sampled_from([0.0, 0.3, 0.29995, 0.005, 1.0]))
def test_tiers_and_reasons_are_what_they_were(tiers: tuple[Tier, ...], value: float) -> None:
    value = round(value, 4)
    assert tier_of(tiers, value) == before.tier_of(tiers, value)


@SETTINGS
@given(bodies(), tier_lists())
def test_choose_gives_the_tier_and_reason_it_gave(doc: dict[str, Any], tiers: Any) -> None:
    raw = msgspec.json.encode(doc)
    routes = routes_for(RouterSettings(tiers=list(tiers)), None)
    choice = choose(routes, alias="auto", requested="auto", feature=None, chat_body=raw)
    assert choice is not None
    assert tuple(choice) == before.tier_of(tiers, before.value(before.extract(raw)))
    bare = Routes(routes.tiers, {}, {}, False)  # made without labels: still the same
    assert choose(bare, alias="auto", requested="auto", feature=None, chat_body=raw) == choice
