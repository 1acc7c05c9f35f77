"""The complexity score of a chat request: a number in [0, 1] from seven features.

Pure, deterministic and cheap (no tokenizer download, no I/O): the body is decoded once
into a Struct holding only what the features read, the texts are scanned with one
compiled regex each. It reads both wire shapes (OpenAI `messages`/`tools`/
`response_format`, Anthropic `system`/content blocks/`thinking`), so a request scores
the same whichever door it came in by.

Each feature gives a signal in [0, 1]; its contribution is `weight * signal`, and the
score is the sum of the contributions, capped at 1. A weight is therefore the most that
feature can add on its own, and the weights sum to more than 1 on purpose: a request
strong on reasoning cues alone reaches the top tier, one that merely is long does not.

| feature           | signal in [0, 1]                                                   | weight |
|-------------------|--------------------------------------------------------------------|--------|
| `reasoning`       | cues in the LAST user message: strong ones ("prove", "step by      | 0.75   |
|                   | step", "trade-offs", "edge cases", "design a"...) count 1, weak    |        |
|                   | ones ("why", "explain", "compare"...) 0.25; min(1, cues / 2). An   |        |
|                   | explicit `reasoning_effort` high / Anthropic `thinking` is 1,      |        |
|                   | medium 0.5                                                         |        |
| `code`            | code blocks anywhere (``` fences; or 3+ code-looking lines in the  | 0.40   |
|                   | last user message): one 0.9, two or more 1; no block but the last  |        |
|                   | user message names a language or an error ("python", "sql",        |        |
|                   | "traceback"...) 0.6; else 0                                        |        |
| `prompt_tokens`   | estimated tokens (characters / 4, tool definitions included),      | 0.35   |
|                   | log-scaled: 64 or fewer -> 0, 16,384 or more -> 1                  |        |
| `tools`           | tool (function) definitions: min(1, n / 5)                         | 0.20   |
| `max_tokens`      | requested output (`max_completion_tokens` / `max_tokens`),         | 0.15   |
|                   | log-scaled: 1,024 or fewer (or absent) -> 0, 16,384 or more -> 1   |        |
| `turns`           | user and assistant messages: min(1, (turns - 1) / 10)              | 0.15   |
| `response_format` | `json_schema` 1, `json_object` 0.5, none or text 0                 | 0.10   |

Cues and code-looking lines are read in the first and last 1,500 characters of the last
user message (where instructions are), so a pasted document costs no more than a page.
The tier thresholds in plugins.toml are tuned against these numbers; `interlock route
--explain '<json>'` prints every signal and contribution for one request. Weights may be
overridden per deployment (`[plugins.cost_router] weights = { reasoning = 0.5 }`).
This module never logs and keeps no state.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = [
    "DEFAULT_VECTOR",
    "FEATURES",
    "WEIGHTS",
    "Features",
    "Score",
    "extract",
    "score",
    "signal_values",
    "signals",
    "value",
    "vector",
]

# The documented default weights (see the table above), in explain order.
WEIGHTS: dict[str, float] = {
    "reasoning": 0.75,
    "code": 0.40,
    "prompt_tokens": 0.35,
    "tools": 0.20,
    "max_tokens": 0.15,
    "turns": 0.15,
    "response_format": 0.10,
}
FEATURES = tuple(WEIGHTS)

CHARS_PER_TOKEN = 4
_TOKENS_LOW, _TOKENS_HIGH = 64, 16_384
_MAX_TOKENS_LOW, _MAX_TOKENS_HIGH = 1_024, 16_384
# Cues are looked for in the head and the tail of the last user message (where the
# instruction is), so a pasted document costs no more to scan than a page.
_SCAN_HEAD = _SCAN_TAIL = 1_500


class Features(msgspec.Struct, frozen=True):
    """What was measured, before any weighting (what `--explain` shows as "value")."""

    prompt_tokens: int = 0
    turns: int = 0
    code_blocks: int = 0
    code_hint: bool = False  # no block, but the last user message talks code
    tools: int = 0
    response_format: str = ""  # "", "text", "json_object", "json_schema"
    max_tokens: int = 0  # 0: not asked
    strong_cues: tuple[str, ...] = ()
    weak_cues: tuple[str, ...] = ()
    reasoning_effort: str = ""  # "", "low", "medium", "high" (Anthropic thinking -> "high")


class Score(msgspec.Struct, frozen=True):
    value: float  # in [0, 1]
    signals: dict[str, float]
    contributions: dict[str, float]


# -- decoding: only the fields the features read --------------------------------------------
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

_STRONG = (
    "step by step",
    "prove",
    "proof",
    "derive",
    "derivation",
    "theorem",
    "rigorous",
    "rigorously",
    "formally",
    "counterexample",
    "trade off",
    "trade offs",
    "tradeoff",
    "tradeoffs",
    "edge case",
    "edge cases",
    "architecture",
    "optimize",
    "optimise",
    "optimization",
    "algorithm",
    "time complexity",
    "think carefully",
    "think hard",
    "in depth",
    "root cause",
    "pros and cons",
    "design a",
    "design an",
    "design the",
)
_WEAK = (
    "why",
    "explain",
    "compare",
    "analyze",
    "analyse",
    "analysis",
    "evaluate",
    "reason",
    "plan",
    "debug",
    "refactor",
    "critique",
    "review",
)
_CODE_WORDS = (
    "python",
    "javascript",
    "typescript",
    "java",
    "golang",
    "rust",
    "sql",
    "regex",
    "bash",
    "shell script",
    "function",
    "stack trace",
    "traceback",
    "exception",
    "compile",
    "compiler",
    "compiles",
    "unit test",
    "unit tests",
)


class _Lexicon:
    """Cue phrases matched on words, not by one big regex (an alternation of forty
    phrases costs ~20 µs on a short prompt in `re`; one set intersection does not).
    Every phrase is filed under its first word; only words that begin some phrase are
    looked at.

    Words are the runs of `a-z`, `0-9` and `+` in the lower-cased text, so "step-by-
    step" is "step by step". They are cut on bytes: the text's UTF-8 with every other
    byte turned into a space by one `bytes.translate` (a table look-up per byte, where
    a regex `findall` costs about twice as much), then `split()`. A non-ASCII character
    is all bytes >= 0x80 in UTF-8, so it separates words exactly as it did in the
    regex `[a-z0-9+]+` on the text."""

    def __init__(self, **kinds: tuple[str, ...]) -> None:
        # first word -> (phrase, kind, b" phrase " and its last word, for a phrase of
        # several words; b"" for a phrase of one)
        self.first: dict[bytes, list[tuple[str, str, bytes, bytes]]] = {}
        for kind, phrases in kinds.items():
            for phrase in phrases:
                first, _, rest = phrase.partition(" ")
                needle = f" {phrase} ".encode() if rest else b""
                last = rest.rsplit(" ", 1)[-1].encode()
                self.first.setdefault(first.encode(), []).append((phrase, kind, needle, last))
        self.starts = frozenset(self.first)

    def find(self, text: str) -> dict[str, set[str]]:
        """kind -> the phrases of that kind found in `text` (empty: none; do not edit)."""
        # ASCII (the common case) needs no str.lower(): the table lower-cases A-Z.
        data = text.encode() if text.isascii() else text.lower().encode("utf-8", "surrogatepass")
        spaced = data.translate(_WORD_BYTES)
        words = spaced.split()
        hits = self.starts.intersection(words)
        if not hits:
            return _NONE_FOUND
        found: dict[str, set[str]] | None = None
        joined = b""
        for first in hits:
            for phrase, kind, needle, last in self.first[first]:
                if needle:
                    # A common first word ("in", "time") rarely comes with the rest of
                    # its phrase: look for the phrase's last word before joining words.
                    if last not in spaced:
                        continue
                    if not joined:
                        joined = b" " + b" ".join(words) + b" "
                    if needle not in joined:
                        continue
                if found is None:
                    found = {}
                found.setdefault(kind, set()).add(phrase)
        return found or _NONE_FOUND


# A word byte (a-z, 0-9, +) stays, A-Z becomes a-z, every other byte becomes a space.
_WORD_BYTES = bytes(
    c + 32 if 65 <= c <= 90 else c if c in b"abcdefghijklmnopqrstuvwxyz0123456789+" else 32
    for c in range(256)
)
_NONE_FOUND: dict[str, set[str]] = {}
_CUES = _Lexicon(strong=_STRONG, weak=_WEAK, code=_CODE_WORDS)
_CODE_LINE = re.compile(
    r"^[ \t]*(?:def |class |import |from \S+ import |#include|function |const |let |var |"
    r"public |private |fn |func |SELECT |INSERT |UPDATE |return |if \(|for \(|while \(|\}|.*;$)",
    re.MULTILINE,
)


def extract(raw: bytes) -> Features:
    """The features of a chat body (OpenAI or Anthropic shape). A body that does not
    decode into the expected shape still gets a size estimate from its length.

    One pass over the messages sums the characters and code fences of every text (a
    string content, the common case, without building a list) and keeps the content of
    the last user message, the only one whose words are read."""
    try:
        body = _decode_body(raw)
    except msgspec.MsgspecError:
        return Features(prompt_tokens=len(raw) // CHARS_PER_TOKEN)
    chars = 0
    fences = 0
    turns = 0
    last_user: Any = None  # the content of the last user message
    texts: list[str] = []  # the texts of contents that are not a plain string
    if body.system is not None:
        _texts(body.system, texts)
    if body.instructions is not None:
        _texts(body.instructions, texts)
    for message in body.messages or _responses_messages(body.input):
        content = message.content
        if isinstance(content, str):
            chars += len(content)
            fences += content.count("```")
        elif isinstance(content, list):
            _texts(content, texts)
        role = message.role
        if role == "user":
            turns += 1
            last_user = content
        elif role == "assistant":
            turns += 1
    for text in texts:
        chars += len(text)
        fences += text.count("```")
    tools = 0
    for group in (body.tools, body.functions):
        if group:
            tools += len(group)
            for tool in group:
                chars += len(tool)
    code_blocks = (fences + 1) // 2
    if isinstance(last_user, str):
        last = last_user
    else:
        found: list[str] = []
        _texts(last_user, found)
        last = "\n".join(found)
    if len(last) > _SCAN_HEAD + _SCAN_TAIL:
        last = last[:_SCAN_HEAD] + "\n" + last[-_SCAN_TAIL:]
    if code_blocks == 0 and last.count("\n") >= 2 and len(_CODE_LINE.findall(last)) >= 3:
        code_blocks = 1
    cues = _CUES.find(last)
    strong = cues.get("strong")
    weak = cues.get("weak")
    return Features(
        prompt_tokens=chars // CHARS_PER_TOKEN,
        turns=turns,
        code_blocks=code_blocks,
        code_hint=code_blocks == 0 and "code" in cues,
        tools=tools,
        response_format=_response_format(body),
        max_tokens=(
            _int(body.max_completion_tokens)
            or _int(body.max_tokens)
            or _int(body.max_output_tokens)
        ),
        strong_cues=tuple(sorted(strong)) if strong else (),
        weak_cues=tuple(sorted(weak)) if weak else (),
        reasoning_effort=_effort(body),
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


def _response_format(body: _Body) -> str:
    """`response_format.type`, else the Responses API's `text.format.type`; "" if none."""
    value = body.response_format
    if value is None:
        if body.text is None:
            return ""
        value = body.text.get("format") if isinstance(body.text, dict) else None
    if isinstance(value, dict):
        kind = value.get("type")
        return kind if isinstance(kind, str) else ""
    return ""


def _int(value: Any) -> int:
    # type() is int: a bool is not a token count (msgspec decodes no other int subclass).
    return value if type(value) is int and value > 0 else 0


def _effort(body: _Body) -> str:
    """Anthropic `thinking` enabled: "high"; else `reasoning_effort` (or the Responses
    API's `reasoning.effort`) when it is low, medium or high; else ""."""
    thinking = body.thinking
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        return "high"
    effort = body.reasoning_effort
    if effort is None:
        if body.reasoning is None:
            return ""
        effort = body.reasoning.get("effort") if isinstance(body.reasoning, dict) else None
    if isinstance(effort, str) and effort in ("low", "medium", "high"):
        return effort
    return ""


# -- weighting --------------------------------------------------------------------------------
def _log_scale(value: int, low: int, high: int) -> float:
    if value <= low:
        return 0.0
    if value >= high:
        return 1.0
    return math.log(value / low) / math.log(high / low)


_FORMATS = {"json_schema": 1.0, "json_object": 0.5}


def signal_values(f: Features) -> tuple[float, ...]:
    """Each feature's signal in [0, 1], in `FEATURES` order (the module docstring's table).
    A feature that is absent (no cue, one turn, no tools...) is 0.0 without its formula
    (which gives exactly 0.0 for it)."""
    strong, weak = len(f.strong_cues), len(f.weak_cues)
    reasoning = min(1.0, (strong + 0.25 * weak) / 2) if strong or weak else 0.0
    effort = f.reasoning_effort
    if effort == "high":
        reasoning = 1.0
    elif effort == "medium":
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
        min(1.0, f.tools / 5) if f.tools else 0.0,
        _log_scale(f.max_tokens, _MAX_TOKENS_LOW, _MAX_TOKENS_HIGH) if f.max_tokens else 0.0,
        min(1.0, (f.turns - 1) / 10) if f.turns > 1 else 0.0,
        _FORMATS.get(f.response_format, 0.0) if f.response_format else 0.0,
    )


def signals(f: Features) -> dict[str, float]:
    return dict(zip(FEATURES, signal_values(f), strict=True))


def vector(weights: Mapping[str, float]) -> tuple[float, ...]:
    """Weights by name as a tuple in `FEATURES` order (what `value` takes)."""
    return tuple(weights.get(name, 0.0) for name in FEATURES)


DEFAULT_VECTOR = vector(WEIGHTS)


def value(f: Features, weights: tuple[float, ...] = DEFAULT_VECTOR) -> float:
    """The score alone: the weighted sum of the signals, capped at 1 (the router's
    per-request path; `score` adds what `--explain` shows). Summed left to right from
    0.0 in `FEATURES` order, so the float is the same whatever the weights."""
    reasoning, code, prompt, tools, output, turns, fmt = signal_values(f)
    w_reasoning, w_code, w_prompt, w_tools, w_output, w_turns, w_fmt = weights
    total = (
        0.0
        + w_reasoning * reasoning
        + w_code * code
        + w_prompt * prompt
        + w_tools * tools
        + w_output * output
        + w_turns * turns
        + w_fmt * fmt
    )
    return round(total if total < 1.0 else 1.0, 4)  # min(1.0, total), nan included


def score(f: Features, weights: Mapping[str, float] = WEIGHTS) -> Score:
    """The score with each feature's signal and contribution."""
    sig = signals(f)
    contributions = {name: weights.get(name, 0.0) * sig[name] for name in FEATURES}
    return Score(value(f, vector(weights)), sig, contributions)
