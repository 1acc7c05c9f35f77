"""cost_router's complexity extraction and weighting as they were before they were
made faster (commit 4377dd0, plugins/cost_router/score.py), kept verbatim as the
reference the property tests in test_score_reference.py compare the live code with:
the same body must give the same Features and the same score, bit for bit."""

# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from interlock.plugins.cost_router.score import (
    CHARS_PER_TOKEN,
    DEFAULT_VECTOR,
    Features,
    _CODE_WORDS,
    _MAX_TOKENS_HIGH,
    _MAX_TOKENS_LOW,
    _SCAN_HEAD,
    _SCAN_TAIL,
    _STRONG,
    _TOKENS_HIGH,
    _TOKENS_LOW,
    _WEAK,
)


class _Message(msgspec.Struct):
    role: Any = ""
    content: Any = None


class _Body(msgspec.Struct):
    messages: list[_Message] = []
    system: Any = None  # Anthropic
    tools: list[msgspec.Raw] | None = None
    functions: list[msgspec.Raw] | None = None  # OpenAI's older name for tools
    response_format: Any = None
    max_tokens: Any = None
    max_completion_tokens: Any = None
    reasoning_effort: Any = None  # OpenAI reasoning models
    thinking: Any = None  # Anthropic extended thinking
    # OpenAI Responses API (/v1/responses)
    instructions: Any = None
    input: Any = None
    max_output_tokens: Any = None
    text: Any = None  # {"format": {...}}: its response_format
    reasoning: Any = None  # {"effort": ...}


_decode_body = msgspec.json.Decoder(_Body).decode


class _Lexicon:
    """Cue phrases matched on words, not by one big regex (an alternation of forty
    phrases costs ~20 µs on a short prompt in `re`; one set intersection does not).
    Every phrase is filed under its first word; only words that begin some phrase are
    looked at. Words are split on anything but letters, digits and `+`, so "step-by-
    step" is "step by step"."""

    def __init__(self, **kinds: tuple[str, ...]) -> None:
        self.first: dict[str, list[tuple[str, str]]] = {}  # first word -> (phrase, kind)
        for kind, phrases in kinds.items():
            for phrase in phrases:
                self.first.setdefault(phrase.split(" ", 1)[0], []).append((phrase, kind))
        self.starts = frozenset(self.first)

    def find(self, words: list[str]) -> dict[str, set[str]]:
        """kind -> the phrases of that kind found in `words`."""
        found: dict[str, set[str]] = {}
        hits = self.starts.intersection(words)
        if not hits:
            return found
        joined = ""
        for first in hits:
            for phrase, kind in self.first[first]:
                if phrase != first:
                    if not joined:
                        joined = " " + " ".join(words) + " "
                    if f" {phrase} " not in joined:
                        continue
                found.setdefault(kind, set()).add(phrase)
        return found


_CUES = _Lexicon(strong=_STRONG, weak=_WEAK, code=_CODE_WORDS)
_WORD = re.compile(r"[a-z0-9+]+")
_CODE_LINE = re.compile(
    r"^[ \t]*(?:def |class |import |from \S+ import |#include|function |const |let |var |"
    r"public |private |fn |func |SELECT |INSERT |UPDATE |return |if \(|for \(|while \(|\}|.*;$)",
    re.MULTILINE,
)


def extract(raw: bytes) -> Features:
    """The features of a chat body (OpenAI or Anthropic shape). A body that does not
    decode into the expected shape still gets a size estimate from its length."""
    try:
        body = _decode_body(raw)
    except msgspec.MsgspecError:
        return Features(prompt_tokens=len(raw) // CHARS_PER_TOKEN)
    chars = 0
    fences = 0
    turns = 0
    last_user: list[str] = []
    texts: list[str] = []
    if body.system is not None:
        _texts(body.system, texts)
    if body.instructions is not None:
        _texts(body.instructions, texts)
    for message in body.messages or _responses_messages(body.input):
        found: list[str] = []
        _texts(message.content, found)
        texts.extend(found)
        role = message.role
        if role == "user" or role == "assistant":
            turns += 1
        if role == "user":
            last_user = found
    for text in texts:
        chars += len(text)
        fences += text.count("```")
    tools = (len(body.tools) if body.tools else 0) + (len(body.functions) if body.functions else 0)
    for group in (body.tools, body.functions):
        for tool in group or ():
            chars += len(tool)
    code_blocks = (fences + 1) // 2
    last = "\n".join(last_user)
    if len(last) > _SCAN_HEAD + _SCAN_TAIL:
        last = last[:_SCAN_HEAD] + "\n" + last[-_SCAN_TAIL:]
    if code_blocks == 0 and last.count("\n") >= 2 and len(_CODE_LINE.findall(last)) >= 3:
        code_blocks = 1
    cues = _CUES.find(_WORD.findall(last.lower()))
    return Features(
        prompt_tokens=chars // CHARS_PER_TOKEN,
        turns=turns,
        code_blocks=code_blocks,
        code_hint=code_blocks == 0 and "code" in cues,
        tools=tools,
        response_format=_response_format(
            body.response_format
            if body.response_format is not None
            else (body.text.get("format") if isinstance(body.text, dict) else None)
        ),
        max_tokens=(
            _int(body.max_completion_tokens)
            or _int(body.max_tokens)
            or _int(body.max_output_tokens)
        ),
        strong_cues=tuple(sorted(cues.get("strong", ()))),
        weak_cues=tuple(sorted(cues.get("weak", ()))),
        reasoning_effort=_effort(
            body.reasoning_effort
            if body.reasoning_effort is not None
            else (body.reasoning.get("effort") if isinstance(body.reasoning, dict) else None),
            body.thinking,
        ),
    )


def _responses_messages(items: Any) -> list[_Message]:
    """A Responses API `input` as messages: a string is one user turn; message items keep
    their role, and tool outputs count as text (of no turn)."""
    if isinstance(items, str):
        return [_Message("user", items)]
    out: list[_Message] = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        if "role" in item:
            out.append(_Message(item.get("role"), item.get("content")))
        elif item.get("type") == "function_call_output":
            out.append(_Message("tool", item.get("output")))
    return out


def _texts(content: Any, out: list[str]) -> None:
    """Every text in a message content: a string, or parts/blocks (text, tool results)."""
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                out.append(block)
            elif isinstance(block, dict):
                text = block.get("text")
                if isinstance(text, str):
                    out.append(text)
                elif block.get("type") == "tool_result":
                    _texts(block.get("content"), out)


def _response_format(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("type")
        return kind if isinstance(kind, str) else ""
    return ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _effort(reasoning_effort: Any, thinking: Any) -> str:
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        return "high"
    if isinstance(reasoning_effort, str) and reasoning_effort in ("low", "medium", "high"):
        return reasoning_effort
    return ""


def _log_scale(value: int, low: int, high: int) -> float:
    if value <= low:
        return 0.0
    if value >= high:
        return 1.0
    return math.log(value / low) / math.log(high / low)


_FORMATS = {"json_schema": 1.0, "json_object": 0.5}


def signal_values(f: Features) -> tuple[float, ...]:
    """Each feature's signal in [0, 1], in `FEATURES` order (the module docstring's table)."""
    reasoning = min(1.0, (len(f.strong_cues) + 0.25 * len(f.weak_cues)) / 2)
    if f.reasoning_effort == "high":
        reasoning = 1.0
    elif f.reasoning_effort == "medium":
        reasoning = max(reasoning, 0.5)
    code = 0.0
    if f.code_blocks:
        code = 0.9 if f.code_blocks == 1 else 1.0
    elif f.code_hint:
        code = 0.6
    return (
        reasoning,
        code,
        _log_scale(f.prompt_tokens, _TOKENS_LOW, _TOKENS_HIGH),
        min(1.0, f.tools / 5),
        _log_scale(f.max_tokens, _MAX_TOKENS_LOW, _MAX_TOKENS_HIGH),
        min(1.0, max(0, f.turns - 1) / 10),
        _FORMATS.get(f.response_format, 0.0),
    )


def value(f: Features, weights: tuple[float, ...] = DEFAULT_VECTOR) -> float:
    """The score alone: the weighted sum of the signals, capped at 1 (the router's
    per-request path; `score` adds what `--explain` shows)."""
    total = 0.0
    for weight, signal in zip(weights, signal_values(f), strict=True):
        total += weight * signal
    return round(min(1.0, total), 4)


def tier_of(tiers, value: float) -> tuple[str, str]:
    """decide.tier_of as it was."""
    for tier in tiers:
        if value < tier.below:
            return tier.model, f"tier<{tier.below:g} score={value:.2f}"
    last = tiers[-1]
    return last.model, f"tier>={last.below:g} score={value:.2f}"
