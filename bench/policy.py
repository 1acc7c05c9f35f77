"""The policy layer as the benchmark runs it: scenario (d)'s plugins.toml tables, shared
by `bench/run` (over sockets) and `python -m bench.inprocess` (in one loop), so both
measure the same configuration.

(d) is tenant_auth + cost_router + failover + rate_limit + budget + audit, in that order
(the order plugins.toml gives them, and the one the README recommends: rate_limit just
before budget, so their counters travel in one call). Limits and budgets are real ones
(every request is checked, reserved, settled and recorded) but far above what a run can
reach, so no request is refused. (e) adds pii_redaction before audit.

The requests of (d) ask for the model `auto`: cost_router scores each one and picks a
tier, as a gateway bought for its router does; both tiers name a model the benchmark's
upstream serves, and failover's chain gives every request a fallback candidate.

audit runs with `durable = false` and a 20 ms linger: issue 13 asks that audit and ledger
writes stay off the request path, and `durable = true` (audit's default) makes every
response wait for its record's commit. The in-process bench prints what durable costs
(`DURABLE`).

This module only builds text; it starts nothing.
"""

from __future__ import annotations

from bench.payloads import REQUEST

# The upstream's models: the one every request is routed to, and its fallback.
MODELS = ("gpt-4o-mini", "gpt-4o")
# The request of (d): the benchmark's chat request, asking the router to choose.
AUTO = {**REQUEST, "model": "auto"}
# A tenant's limits no run reaches (the tenant and the key are created with them).
RPM = 1_000_000_000
TPM = 1_000_000_000_000
BUDGET_USD = 100_000.0  # precise to ~1e-11 USD in the remaining-budget header

TABLES: dict[str, str] = {
    "tenant_auth": """
[plugins.tenant_auth]
master_key = ""
""",
    "cost_router": """
[plugins.cost_router]
tiers = [ { below = 0.3, model = "gpt-4o-mini" }, { below = 1.01, model = "gpt-4o-mini" } ]
""",
    "failover": """
[plugins.failover]
chain = ["gpt-4o-mini", "gpt-4o"]
master_key = ""
""",
    "rate_limit": f"""
[plugins.rate_limit]
tenant = {{ rpm = {RPM}, tpm = {TPM} }}
key = {{ rpm = {RPM}, tpm = {TPM} }}
""",
    "budget": f"""
[plugins.budget]
tenant_usd = {BUDGET_USD}
key_usd = {BUDGET_USD}
""",
    "pii_redaction": """
[plugins.pii_redaction]
""",
    "audit": """
[plugins.audit]
master_key = ""
""",
}
# The plugins of (d), in plugins.toml order; (e) is D + pii_redaction.
D = ("tenant_auth", "cost_router", "failover", "rate_limit", "budget", "audit")
E = ("tenant_auth", "cost_router", "failover", "rate_limit", "budget", "pii_redaction", "audit")


# The audit table's last lines: records off the request path (the benchmark's), or
# audit's own default (every response waits for its record's commit).
OFF_PATH = "durable = false\nbatch_linger_ms = 20\n"
DURABLE = "durable = true\nbatch_linger_ms = 0\n"


def tables(plugins: tuple[str, ...] = D, *, audit: str = OFF_PATH) -> str:
    """The plugins.toml tables of `plugins`, in order; `audit` ends the audit table."""
    text = "".join(TABLES[name] for name in plugins)
    if audit and "audit" in plugins:
        text += audit.rstrip("\n") + "\n"
        # The extra lines belong to [plugins.audit]: it must be the last table.
        assert plugins[-1] == "audit", "audit's extra lines need audit last"
    return text


def pii_prompt(size: int = 2_000) -> str:
    """Support-ticket prose of `size` characters with an email, a phone number and a
    card number about every kilobyte: what a redaction plugin sees in a real prompt."""
    text = (
        "The customer wrote again about the delayed refund for order 100238 placed on "
        "2026-11-02; she says the parcel never arrived and the tracking page shows no "
        "update since Tuesday. Please check with the carrier, confirm the address on file "
        "and let her know within two working days, as promised in our last reply. "
    )
    pii = "Reach her at maria.g@example.com or +1 415-555-0199; card 4111 1111 1111 1111. "
    out = ""
    while len(out) < size:
        out += text + text + text + pii
    return out[:size]


def pii_request(size: int = 2_000) -> dict[str, object]:
    """(e)'s request: (d)'s, with a `size`-character user message holding a few PII values."""
    return {**AUTO, "messages": [{"role": "user", "content": pii_prompt(size)}]}
