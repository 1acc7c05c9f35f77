"""Azure OpenAI: OpenAI's wire format at deployment URLs, with an `api-key` header.

`{base_url}/openai/deployments/{deployment}/chat/completions?api-version=...`, where the
deployment is the model's `model_map` entry or the model name itself; a name that would
change the path (`/`, `.`, `..`) is refused with a 400 before anything is sent. Bodies and
answers are OpenAI's, so everything else is the OpenAI adapter unchanged. The Responses API is
served by Azure's v1 surface only, with no deployment in the URL: `{base_url}/openai/v1/
responses` (the deployment is the body's `model`, which `model_map` sets), with
`?api-version=` only when `responses_api_version` is configured (older "preview" setups).
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
    responses_api_version: str | None = None  # the v1 Responses API needs none


class AzureProvider(OpenAIProvider):
    kind = "azure"
    Options = AzureOptions
    default_base_url: ClassVar[str | None] = None
    model_in_path = True

    def url(self, model: str, path: str) -> str:
        deployment = path_segment(self.upstream_model(model))
        version = quote(self.options.api_version, safe="")
        return f"{self.base_url}/openai/deployments/{deployment}{path}?api-version={version}"

    def responses_url(self, suffix: str = "") -> str:
        url = f"{self.base_url}/openai/v1/responses{suffix}"
        version = self.options.responses_api_version
        return f"{url}?api-version={quote(version, safe='')}" if version else url

    def headers(self) -> dict[str, str]:
        return self.json_headers("api-key")
