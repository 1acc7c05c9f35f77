"""Provider adapters, one module per wire format, and the registry of built-in kinds."""

from __future__ import annotations

from ..errors import upstream_error
from .anthropic import AnthropicProvider
from .azure import AzureProvider
from .base import HttpProvider, Provider, ProviderReply
from .gemini import GeminiProvider
from .mock import MockProvider
from .openai import OpenAICompatibleProvider, OpenAIProvider

__all__ = ["BUILTIN_KINDS", "HttpProvider", "Provider", "ProviderReply", "upstream_error"]

BUILTIN_KINDS: dict[str, type[Provider]] = {
    cls.kind: cls
    for cls in (
        OpenAIProvider,
        OpenAICompatibleProvider,
        AnthropicProvider,
        GeminiProvider,
        AzureProvider,
        MockProvider,
    )
}
