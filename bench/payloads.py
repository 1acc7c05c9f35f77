"""What the benchmark sends and what its fixed upstream answers: a chat request, a
chat.completion, and a stream of 21 SSE events (19 content chunks, a usage chunk, [DONE])."""

import msgspec

REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Say hello to the benchmark in one short sentence."},
    ],
    "temperature": 0.2,
}
# The client asks for the usage chunk, so every server relays the same 21 events.
STREAM_REQUEST = {**REQUEST, "stream": True, "stream_options": {"include_usage": True}}

COMPLETION = {
    "id": "chatcmpl-bench0000000000000000000000",
    "object": "chat.completion",
    "created": 1732000000,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_bench",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello, benchmark! Nice to meet you; let us see how fast this goes.",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 28,
        "completion_tokens": 17,
        "total_tokens": 45,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
}

EVENTS = 21
WORDS = [
    "Hello",
    ",",
    "bench",
    "mark",
    "!",
    "Nice",
    "to",
    "meet",
    "you",
    ";",
    "let",
    "us",
    "see",
    "how",
    "fast",
    "this",
    "goes",
    "today",
    ".",
]


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    doc = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1732000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
        "usage": usage,
    }
    return b"data: " + msgspec.json.encode(doc) + b"\n\n"


def sse_events() -> list[bytes]:
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": " " + w}) for w in WORDS[:17]]
    events.append(_chunk({}, "stop"))
    events.append(
        _chunk({}, usage={"prompt_tokens": 28, "completion_tokens": 17, "total_tokens": 45})
    )
    events.append(b"data: [DONE]\n\n")
    assert len(events) == EVENTS
    return events


def encoded(doc: dict) -> bytes:
    return msgspec.json.encode(doc)
