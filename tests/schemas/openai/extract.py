"""Copy the component schemas the tests need out of OpenAI's OpenAPI description.

    git clone https://github.com/openai/openai-openapi && cd openai-openapi
    git checkout f85dbe223d40e1a31cba812ab2d755c7e98a92a3
    python PATH/TO/tests/schemas/openai/extract.py openapi.json

writes one `NAME.json` per schema next to this file: the roots below and every schema
they reference, each exactly as published (`$ref`s keep their `#/components/schemas/`
form; tests/core/test_openai_schemas.py resolves them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOTS = [
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "ChatCompletionResponseMessage",
    "ChatCompletionMessageToolCall",
    "CompletionUsage",
    "CreateEmbeddingResponse",
    "ListModelsResponse",
    "Model",
    "ErrorResponse",
    "Error",
]
PREFIX = "#/components/schemas/"


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def main(spec_path: str) -> None:
    schemas = json.loads(Path(spec_path).read_text())["components"]["schemas"]
    seen: set[str] = set()
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(r.removeprefix(PREFIX) for r in refs(schemas[name]))
    out = Path(__file__).parent
    for name in sorted(seen):
        text = json.dumps(schemas[name], indent=2, ensure_ascii=False) + "\n"
        (out / f"{name}.json").write_text(text)
    print(f"{len(seen)} schemas written to {out}")


if __name__ == "__main__":
    main(sys.argv[1])
