"""The complexity score: a labelled set of prompts lands in the expected tiers of the
reference scenario (below 0.3 simple, below 0.7 medium, else complex), each feature
moves the score the way its documentation says, and both wire shapes score alike."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.plugins.cost_router.decide import Tier, tier_of
from interlock.plugins.cost_router.score import (
    FEATURES,
    WEIGHTS,
    Features,
    extract,
    score,
    signals,
)

TIERS = (
    Tier(below=0.3, model="gpt-4o-mini"),
    Tier(below=0.7, model="gpt-4o"),
    Tier(below=1.01, model="claude-opus-4-6"),
)
SIMPLE, MEDIUM, COMPLEX = "gpt-4o-mini", "gpt-4o", "claude-opus-4-6"


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": list(messages), **extra}


CODE = "```python\ndef total(items):\n    return sum(i['price'] for i in items)\n```"
ARTICLE = "The council met on Tuesday to discuss the budget for the coming year. " * 60
TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the internal knowledge base for documents.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}

LABELLED: list[tuple[str, dict[str, Any], str]] = [
    ("greeting", body(user("hi")), SIMPLE),
    ("fact", body(user("What is the capital of France?")), SIMPLE),
    (
        "translation",
        body(
            {"role": "system", "content": "You translate."},
            user("Translate 'good morning' to Spanish."),
        ),
        SIMPLE,
    ),
    ("short why", body(user("Explain why the sky is blue in one sentence.")), SIMPLE),
    ("summary of a long text", body(user("Summarize this article:\n" + ARTICLE)), SIMPLE),
    (
        "extraction to json",
        body(
            user("Extract the name and the date from: 'Ana signed on 3 May'"),
            response_format={"type": "json_object"},
        ),
        SIMPLE,
    ),
    (
        "small talk, several turns",
        body(
            user("I want to visit Japan"),
            {"role": "assistant", "content": "Lovely! When?"},
            user("In April"),
            {"role": "assistant", "content": "Cherry blossom season."},
            user("Which city first?"),
        ),
        SIMPLE,
    ),
    (
        "fix this code",
        body(user("This raises KeyError when an item has no price, fix it:\n" + CODE)),
        MEDIUM,
    ),
    (
        "write a function",
        body(user("Write a Python function that parses ISO dates; handle the edge cases.")),
        MEDIUM,
    ),
    (
        "design a schema",
        body(user("Design a database schema for a library: books, members and loans.")),
        MEDIUM,
    ),
    (
        "agent with tools",
        body(
            user("Find last quarter's revenue report and compare it with this one."),
            tools=[TOOL] * 4,
            response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": {}}},
        ),
        MEDIUM,
    ),
    (
        "review a diff",
        body(user("Review this change and explain what it does:\n" + CODE + "\n" + CODE)),
        MEDIUM,
    ),
    (
        "long multi-turn support chat",
        body(
            *[
                m
                for i in range(8)
                for m in (
                    user(f"My order {i} has not arrived, the tracking page says pending. " * 5),
                    {"role": "assistant", "content": "I am sorry to hear that. Let me check. " * 5},
                )
            ],
            user("Why is it still pending? What should I do now?"),
        ),
        MEDIUM,
    ),
    ("proof", body(user("Prove that there are infinitely many primes, step by step.")), COMPLEX),
    (
        "architecture trade-offs",
        body(
            {"role": "system", "content": "You are a principal engineer."},
            user(
                "Design a multi-region payment ledger. Compare the trade-offs of synchronous "
                "replication versus CRDTs and think carefully about edge cases."
            ),
            max_tokens=8000,
        ),
        COMPLEX,
    ),
    (
        "algorithm with code",
        body(
            user(
                "Optimize this algorithm and give its time complexity:\n" + CODE,
            )
        ),
        COMPLEX,
    ),
    (
        "agentic root cause",
        body(
            user("Find the root cause of the failing deploy and fix the pipeline:\n" + CODE),
            tools=[TOOL] * 6,
            max_tokens=4096,
        ),
        COMPLEX,
    ),
    (
        "explicit reasoning effort",
        body(user("Is this contract clause enforceable? " * 3), reasoning_effort="high"),
        COMPLEX,
    ),
]


def _score(doc: dict[str, Any]) -> float:
    return score(extract(msgspec.json.encode(doc))).value


@pytest.mark.parametrize(("label", "doc", "tier"), LABELLED, ids=[x[0] for x in LABELLED])
def test_labelled_prompts_fall_in_their_tier(label: str, doc: dict[str, Any], tier: str) -> None:
    value = _score(doc)
    assert tier_of(TIERS, value)[0] == tier, f"{label}: score {value}"


def test_the_labelled_set_covers_every_tier_with_a_margin() -> None:
    """No prompt sits on a boundary by accident: each is at least 0.02 inside its tier."""
    bounds = {SIMPLE: (0.0, 0.3), MEDIUM: (0.3, 0.7), COMPLEX: (0.7, 1.01)}
    for label, doc, tier in LABELLED:
        low, high = bounds[tier]
        value = _score(doc)
        assert value >= (low + 0.02 if low else 0.0), label
        assert value <= high - 0.02 or tier == COMPLEX, label


def test_weights_are_documented_and_contributions_add_up() -> None:
    import interlock.plugins.cost_router.score as module

    for name, weight in WEIGHTS.items():
        assert f"`{name}`" in (module.__doc__ or "")
        assert f"{weight:.2f}" in (module.__doc__ or "")
    doc = body(user("Prove it step by step:\n" + CODE), tools=[TOOL], max_tokens=2048)
    result = score(extract(msgspec.json.encode(doc)))
    assert set(result.contributions) == set(FEATURES)
    assert result.value == pytest.approx(min(1.0, sum(result.contributions.values())), abs=1e-4)


def test_each_feature_raises_the_score() -> None:
    base = body(user("Tell me about owls."))
    plain = _score(base)
    variants = {
        "reasoning": body(user("Tell me about owls. Prove your claims rigorously.")),
        "code": body(user("Tell me about owls.\n" + CODE)),
        "prompt_tokens": body(user("Tell me about owls. " + ARTICLE)),
        "tools": body(user("Tell me about owls."), tools=[TOOL, TOOL]),
        "max_tokens": body(user("Tell me about owls."), max_tokens=8000),
        "turns": body(*[user("Tell me about owls.")] * 6),
        "response_format": body(
            user("Tell me about owls."), response_format={"type": "json_schema"}
        ),
    }
    for feature, doc in variants.items():
        result = score(extract(msgspec.json.encode(doc)))
        assert result.value > plain, feature
        assert result.contributions[feature] > 0, feature


def test_anthropic_and_openai_shapes_score_alike() -> None:
    openai = body(
        {"role": "system", "content": "You review code."},
        user("Why does this fail? Explain step by step.\n" + CODE),
        max_tokens=2048,
        tools=[TOOL],
    )
    anthropic = {
        "model": "auto",
        "system": "You review code.",
        "max_tokens": 2048,
        "tools": [
            {
                "name": "search",
                "description": "Search the internal knowledge base for documents.",
                "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
            }
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Why does this fail? Explain step by step.\n" + CODE}
                ],
            }
        ],
    }
    a = extract(msgspec.json.encode(openai))
    b = extract(msgspec.json.encode(anthropic))
    assert (a.turns, a.code_blocks, a.tools, a.max_tokens) == (
        b.turns,
        b.code_blocks,
        b.tools,
        b.max_tokens,
    )
    assert a.strong_cues == b.strong_cues == ("step by step",)
    assert a.weak_cues == b.weak_cues == ("explain", "why")
    assert abs(a.prompt_tokens - b.prompt_tokens) <= 10
    thinking = {**anthropic, "thinking": {"type": "enabled", "budget_tokens": 2000}}
    assert signals(extract(msgspec.json.encode(thinking)))["reasoning"] == 1.0


def test_responses_api_bodies_score_like_chat_bodies() -> None:
    """/v1/responses (Codex CLI): instructions, input items, max_output_tokens, text.format
    and reasoning.effort are read like their chat-completions equivalents."""
    chat = body(
        {"role": "system", "content": "You review code."},
        user("Why does this fail? Explain step by step.\n" + CODE),
        max_tokens=2048,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    )
    responses = {
        "model": "auto",
        "instructions": "You review code.",
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Why does this fail? Explain step by step.\n" + CODE}
                ],
            },
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        ],
        "max_output_tokens": 2048,
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}},
    }
    a = extract(msgspec.json.encode(chat))
    b = extract(msgspec.json.encode(responses))
    assert (a.turns, a.code_blocks, a.max_tokens, a.response_format) == (
        b.turns,
        b.code_blocks,
        b.max_tokens,
        b.response_format,
    )
    assert a.strong_cues == b.strong_cues == ("step by step",)
    assert abs(a.prompt_tokens - b.prompt_tokens) <= 10
    assert extract(b'{"model": "auto", "input": "hello"}').turns == 1
    effort = {**responses, "reasoning": {"effort": "high"}}
    assert signals(extract(msgspec.json.encode(effort)))["reasoning"] == 1.0


def test_only_the_last_user_message_carries_reasoning_cues() -> None:
    earlier = body(
        user("Prove it step by step."), {"role": "assistant", "content": "Done."}, user("thanks")
    )
    assert extract(msgspec.json.encode(earlier)).strong_cues == ()


def test_unfenced_code_counts_as_a_block_and_naming_a_language_as_a_hint() -> None:
    pasted = "why does this fail\nimport os\ndef main():\n    return os.environ['X']\n"
    prose = "Dear team,\nthe report is attached.\nBest regards,\nAna"
    hint = "How do I read a file in Python?"
    assert extract(msgspec.json.encode(body(user(pasted)))).code_blocks == 1
    assert extract(msgspec.json.encode(body(user(prose)))).code_blocks == 0
    f = extract(msgspec.json.encode(body(user(hint))))
    assert (f.code_blocks, f.code_hint, signals(f)["code"]) == (0, True, 0.6)


def test_cues_are_read_at_both_ends_of_a_long_message() -> None:
    filler = "lorem ipsum dolor " * 1000
    for text, cues in [
        (filler + " Prove it.", ("prove",)),
        ("Prove it. " + filler, ("prove",)),
        (filler + " Prove it. " + filler, ()),  # buried in the middle of a document
    ]:
        assert extract(msgspec.json.encode(body(user(text)))).strong_cues == cues


def test_a_body_of_an_unexpected_shape_still_gets_a_size() -> None:
    weird = b'{"model": "auto", "messages": "not a list", "padding": "' + b"x" * 4000 + b'"}'
    f = extract(weird)
    assert f == Features(prompt_tokens=len(weird) // 4)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=30),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    ["role", "content", "type", "text", "messages", "tools", "max_tokens", "system"]
                ),
                children,
                max_size=4,
            )
        ),
        max_leaves=20,
    )
)
def test_any_json_body_scores_in_the_unit_interval(doc: Any) -> None:
    value = score(extract(msgspec.json.encode({"model": "auto", "messages": doc}))).value
    assert 0.0 <= value <= 1.0


def test_the_score_is_deterministic() -> None:
    raw = msgspec.json.encode(LABELLED[-3][1])
    assert len({score(extract(raw)).value for _ in range(5)}) == 1
