"""Azure OpenAI: OpenAI's wire format at deployment URLs, with an `api-key` header.

`{base_url}/openai/deployments/{deployment}/chat/completions?api-version=...`, where the
deployment is the model's `model_map` entry or the model name itself; a name that would
change the path (`/`, `.`, `..`) is refused with a 400 before anything is sent. Bodies and answers
are OpenAI's, so everything else is the OpenAI adapter unchanged.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

import msgspec

from .base import path_segment
from .openai import OpenAIProvider

__all__ = ["AzureOptions", "AzureProvider"]


class AzureOptions(msgspec.Struct, forbid_unknown_fields=True):
    api_version: str = "2024-10-21"


class AzureProvider(OpenAIProvider):
    kind = "azure"
    Options = AzureOptions
    default_base_url: ClassVar[str | None] = None
    model_in_path = True

    def url(self, model: str, path: str) -> str:
        deployment = path_segment(self.upstream_model(model))
        version = quote(self.options.api_version, safe="")
        return f"{self.base_url}/openai/deployments/{deployment}{path}?api-version={version}"

    def headers(self) -> dict[str, str]:
        return self.json_headers("api-key")
