"""pii_redaction: personal data and secrets never leave for a provider unless allowed.

`pre_forward` finds emails, phone numbers, card numbers, SSNs, IBANs, IP addresses and
secrets (OpenAI/Anthropic keys, AWS keys, GitHub tokens, JWTs, PEM private keys) in
every message text (system prompts, string contents, text parts; with `tools = true`
also tool-call arguments and Anthropic tool results; and the `input` of embeddings), whatever the
inbound format and also on the native pass-through, and applies each type's action:
`redact`, `mask`, `tokenize` or `block` (400 `pii_blocked`, naming the type). Tokenized
values come back in the answer: `transform_response` restores a complete answer,
`wrap_stream` a streamed one (placeholders split across chunks included).

For the audit plugin, `ctx.state["pii_redaction"]` holds `counts` (type -> how many, never
a value) and `scrub` (text -> text with every finding replaced by its label), so a body
the audit stores has been through the same detectors. Values live only in the request's
`Vault`, which dies with the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import phonenumbers

from interlock.core import ConfigError, GatewayError, Plugin, RequestContext, Services, hookimpl

from .actions import DEFAULT_ACTIONS, PLACEHOLDER, Action, Vault, apply
from .detectors import TYPES, Detector, Finding
from .restore import StreamRestorer, restore_body

__all__ = ["PiiRedaction"]

# How a refusal names each type (never the value).
_NAMES = {
    "email": "an email address",
    "phone": "a phone number",
    "credit_card": "a payment card number",
    "ssn": "a US social security number",
    "iban": "an IBAN",
    "ip_address": "an IP address",
    "api_key": "an API key",
    "aws_key": "an AWS key",
    "github_token": "a GitHub token",
    "jwt": "a JSON web token",
    "private_key": "a private key",
}


class PiiRedaction(Plugin):
    name = "pii_redaction"

    class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
        # type -> "redact" | "mask" | "tokenize" | "block" | "off"; types not named keep
        # their default (DEFAULT_ACTIONS in actions.py).
        actions: dict[str, Action] = {}
        # Also tool-call arguments (OpenAI tool_calls, Anthropic tool_use) and Anthropic
        # tool_result blocks; OpenAI `role: tool` messages are message texts, always checked.
        tools: bool = False
        # Also the `input` of /v1/embeddings (tokenize redacts there: nothing comes back).
        embeddings: bool = True
        # The country assumed for phone numbers written without a `+` country code.
        phone_region: str = "US"

    def __init__(self, config: Config, services: Services) -> None:
        super().__init__(config, services)
        where = f"{services.config.source}: [plugins.{self.name}]"
        unknown = sorted(set(config.actions) - set(TYPES))
        if unknown:
            raise ConfigError(
                f"{where} key `actions`: unknown type '{unknown[0]}' (known: {', '.join(TYPES)})"
            )
        if config.phone_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(
                f"{where} key `phone_region`: '{config.phone_region}' is not a region code "
                "such as US, GB, DE"
            )
        self.actions: dict[str, Action] = {**DEFAULT_ACTIONS, **config.actions}
        active = [kind for kind, action in self.actions.items() if action != "off"]
        self.detector = Detector(active, config.phone_region)
        self.redact_all: dict[str, Action] = {kind: "redact" for kind in active}
        self.tokenizes = any(action == "tokenize" for action in self.actions.values())

    # -- the request ---------------------------------------------------------------------
    @hookimpl
    def pre_forward(self, ctx: RequestContext) -> None:
        counts: dict[str, int] = {}
        vault = Vault()
        ctx.state[self.name] = {"counts": counts, "scrub": self.scrub, "vault": vault}
        if ctx.endpoint == "embeddings":
            if self.config.embeddings:
                self._embeddings(ctx, counts)
            return
        texts = ctx.texts()
        found: dict[str, list[Finding]] = {}
        any_found = False
        for text in texts:
            if text not in found:
                hits = found[text] = self.detector.find(text)
                any_found = any_found or bool(hits)
                if "[" in text and self.tokenizes:
                    vault.reserved.update(PLACEHOLDER.findall(text))
        if not any_found:
            return  # the body goes upstream byte for byte
        blocked: list[str] = []
        actions = self.actions
        detector = self.detector

        def redact(text: str) -> str:
            hits = found.get(text)
            if hits is None:
                hits = detector.find(text)
            if not hits:
                return text
            return apply(text, hits, actions, vault, counts, blocked)

        ctx.map_texts(redact, tools=self.config.tools)
        if blocked:
            raise _blocked(blocked[0], "messages")

    def _embeddings(self, ctx: RequestContext, counts: dict[str, int]) -> None:
        value = ctx.payload().get("input")
        blocked: list[str] = []

        def redact(text: str) -> str:
            hits = self.detector.find(text)
            return apply(text, hits, self.actions, None, counts, blocked) if hits else text

        if isinstance(value, str):
            new: Any = redact(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            new = [redact(v) for v in value]
        else:
            return  # token arrays carry no text
        if blocked:
            raise _blocked(blocked[0], "input")
        if counts:
            ctx.set_field("input", new)

    # -- the answer ----------------------------------------------------------------------
    @hookimpl
    def transform_response(self, ctx: RequestContext, body: bytes) -> bytes | None:
        vault = _vault(ctx, self.name)
        if vault is None:
            return None
        return restore_body(body, vault)

    @hookimpl
    def wrap_stream(
        self, ctx: RequestContext, stream: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes] | None:
        vault = _vault(ctx, self.name)
        if vault is None:
            return None
        return StreamRestorer(vault, ctx.wire).wrap(stream)

    # -- for the audit plugin -----------------------------------------------------------
    def scrub(self, text: str) -> str:
        """`text` with every finding of an active type replaced by its label."""
        hits = self.detector.find(text)
        if not hits:
            return text
        return apply(text, hits, self.redact_all, None, {}, [])


def _vault(ctx: RequestContext, name: str) -> Vault | None:
    state = ctx.state.get(name)
    vault = state.get("vault") if state is not None else None
    return vault if vault else None


def _blocked(kind: str, param: str) -> GatewayError:
    return GatewayError(
        400,
        "pii_blocked",
        f"the request contains {_NAMES[kind]} ({kind}), which this gateway does not "
        "forward; remove it and try again",
        code="pii_blocked",
        param=param,
    )
