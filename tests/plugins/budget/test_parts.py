"""budget's parts on their own: periods, the worst-case estimate, the ledger writer, the
configuration checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from interlock.core import Candidate, RequestContext, RoutingDecision
from interlock.core.config import ProviderConfig
from interlock.core.context import ChatHead
from interlock.core.pricing import Pricing
from interlock.core.providers.openai import OpenAIProvider
from interlock.core.store import Store, StoreError, Tx, open_store
from interlock.plugins.budget.cost import WorstCase
from interlock.plugins.budget.ledger import MIGRATIONS, LedgerRow, LedgerWriter, spend_in
from interlock.plugins.budget.periods import Periods, period_at
from tests.support import start_up_error


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# -- periods -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "at", "pid", "start", "end"),
    [
        ("monthly", "2026-11-25T17:00:00", "2026-11", "2026-11-01", "2026-12-01"),
        ("monthly", "2026-12-31T23:59:59", "2026-12", "2026-12-01", "2027-01-01"),
        ("monthly", "2027-01-01T00:00:00", "2027-01", "2027-01-01", "2027-02-01"),
        ("daily", "2026-11-25T23:59:59", "2026-11-25", "2026-11-25", "2026-11-26"),
        ("weekly", "2026-11-25T12:00:00", "2026-W48", "2026-11-23", "2026-11-30"),
        ("weekly", "2027-01-01T12:00:00", "2026-W53", "2026-12-28", "2027-01-04"),
    ],
)
def test_periods_are_calendar_periods_in_utc(
    kind: Any, at: str, pid: str, start: str, end: str
) -> None:
    period = period_at(kind, ts(at))
    assert (period.id, period.start, period.end) == (
        pid,
        ts(start + "T00:00:00"),
        ts(end + "T00:00:00"),
    )


def test_the_current_period_rolls_over_when_it_ends() -> None:
    periods = Periods("daily")
    first = periods.current(ts("2026-11-25T23:59:59"))
    assert periods.current(ts("2026-11-25T10:00:00")) is first  # cached while it lasts
    assert periods.current(ts("2026-11-26T00:00:00")).id == "2026-11-26"


# -- the worst case ---------------------------------------------------------------------------
def _ctx(body: dict[str, Any], candidates: list[tuple[str, str]]) -> RequestContext:
    raw = msgspec.json.encode(body)
    ctx = RequestContext(
        request_id="r",
        inbound="openai",
        endpoint="chat",
        path="/v1/chat/completions",
        headers={},
        client=None,
    )
    ctx.set_body(raw, msgspec.json.decode(raw, type=ChatHead))
    ctx.decision = RoutingDecision([Candidate(p, m) for p, m in candidates])
    return ctx


@pytest.fixture
def worst() -> WorstCase:
    aliased = OpenAIProvider(
        ProviderConfig(
            name="up",
            kind="openai",
            base_url="http://127.0.0.1:9/v1",
            api_key="k",
            models=["fast"],
            model_map={"fast": "gpt-4o-mini"},
        ),
        client_kind="httpx",
        source="test",
    )
    return WorstCase(Pricing(), {"up": aliased}, 4096, {"gpt-4o": 16_384})


def test_the_output_cap_comes_from_the_request_else_the_model_else_the_default(
    worst: WorstCase,
) -> None:
    price = Pricing().price("gpt-4o")
    assert price is not None
    hi = [{"role": "user", "content": "x" * 396}]
    for extra, out in [
        ({"max_tokens": 100}, 100),
        ({"max_tokens": 100, "max_completion_tokens": 50}, 50),
        ({}, 16_384),  # the model's output limit from max_output_tokens
        ({"max_tokens": "many"}, 16_384),  # not a number: the provider refuses it anyway
    ]:
        body = {"model": "gpt-4o", "messages": hi, **extra}
        ctx = _ctx(body, [("up", "gpt-4o")])
        prompt = len(ctx.raw) // 4
        assert worst.cost(ctx) == pytest.approx((prompt * price.input + out * price.output) / 1e6)
    ctx = _ctx({"model": "gpt-4.1", "messages": hi}, [("up", "gpt-4.1")])
    small = Pricing().price("gpt-4.1")
    assert small is not None
    assert worst.cost(ctx) == pytest.approx(
        ((len(ctx.raw) // 4) * small.input + 4096 * small.output) / 1e6
    )


def test_the_most_expensive_candidate_counts_and_aliases_are_priced_as_their_model(
    worst: WorstCase,
) -> None:
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000}
    mini = Pricing().price("gpt-4o-mini")
    opus = Pricing().price("claude-opus-4-6")
    assert mini is not None and opus is not None
    alias = _ctx(body, [("up", "fast")])
    prompt = len(alias.raw) // 4
    assert worst.cost(alias) == pytest.approx((prompt * mini.input + 1000 * mini.output) / 1e6)
    chain = _ctx(body, [("up", "fast"), ("other", "claude-opus-4-6")])
    # Opus writes to its prompt cache at more than its input price: the worst case.
    assert opus.cache_write is not None and opus.cache_write > opus.input
    assert worst.cost(chain) == pytest.approx(
        (prompt * opus.cache_write + 1000 * opus.output) / 1e6
    )
    assert worst.cost(_ctx(body, [("up", "my-unpriced-finetune")])) == 0.0


def test_a_responses_request_caps_its_output_with_max_output_tokens(worst: WorstCase) -> None:
    from interlock.core.inbound_responses import OpenAIResponses
    from interlock.core.inbound_responses.store import ResponsesStore

    raw = msgspec.json.encode({"model": "gpt-4o", "input": "hi", "max_output_tokens": 300})
    decoded = OpenAIResponses(ResponsesStore(60)).decode(raw, {})
    ctx = RequestContext(
        request_id="r",
        inbound="responses",
        endpoint="chat",
        path="/v1/responses",
        headers={},
        client=None,
    )
    ctx.set_body(decoded.raw, decoded.head)
    ctx.decision = RoutingDecision([Candidate("up", "gpt-4o")])
    price = Pricing().price("gpt-4o")
    assert price is not None
    prompt = len(raw) // 4
    assert worst.cost(ctx) == pytest.approx((prompt * price.input + 300 * price.output) / 1e6)


# -- the ledger writer ---------------------------------------------------------------------------
class FlakyStore:
    """A real store whose next `failures` transactions fail, as a locked database would."""

    def __init__(self, store: Store, failures: int) -> None:
        self.store = store
        self.failures = failures
        self.commits = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        if self.failures:
            self.failures -= 1
            raise StoreError("database is locked")
        async with self.store.transaction() as tx:
            yield tx
        self.commits += 1


def _row(i: int, tenant: str = "acme", cost: float = 0.5) -> LedgerRow:
    return (
        f"r{i}",
        ts("2026-11-25T12:00:00"),
        "2026-11",
        tenant,
        "k1",
        None,
        "gpt-4o",
        "gpt-4o",
        cost,
        10,
        5,
        0,
        200,
    )


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def error(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


def _spawn(coro: Any, *, name: str) -> asyncio.Task[Any]:
    return asyncio.get_running_loop().create_task(coro, name=name)


async def test_the_ledger_commits_in_groups_and_retries_a_failed_write(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/ledger.db")
    try:
        await store.migrate("budget", MIGRATIONS)
        flaky = FlakyStore(store, failures=2)
        log = Log()
        writer = LedgerWriter(flaky, _spawn, log, retry_s=0.001)  # type: ignore[arg-type]
        for i in range(250):  # what 250 post_response hooks do: no await, no database
            writer.add(_row(i))
        writer.add(_row(250, tenant="other", cost=2.0))
        await writer.flush()
        assert flaky.commits == 1  # one transaction carried them all
        assert [event for event, _ in log.lines] == ["spend_ledger_write_failed"] * 2
        assert log.lines[0][1] == {"rows": 251, "error": "database is locked"}
        spend = await spend_in(store, ts("2026-11-01T00:00:00"), ts("2026-12-01T00:00:00"))
        assert sorted(spend) == [
            ("acme", "k1", None, "gpt-4o", 125.0),
            ("other", "k1", None, "gpt-4o", 2.0),
        ]
        assert await spend_in(store, ts("2026-12-01T00:00:00"), ts("2027-01-01T00:00:00")) == []
        await writer.close()
    finally:
        await store.close()


async def test_a_full_ledger_queue_drops_and_says_so(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/ledger.db")
    try:
        await store.migrate("budget", MIGRATIONS)
        log = Log()
        writer = LedgerWriter(store, _spawn, log, max_pending=3)
        for i in range(5):
            writer.add(_row(i))
        assert writer.dropped == 2
        assert log.lines == [("spend_ledger_full", {"dropped": 1})]
        await writer.close()
        assert len(await store.fetchall("SELECT id FROM spend_ledger")) == 3
    finally:
        await store.close()


# -- configuration -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("soft_threshold = 1.5", "[plugins.budget] key `soft_threshold`: must be in (0, 1]"),
        (
            'features = { "bot" = -1.0 }',
            "[plugins.budget] key `features.bot`: must be a number of USD >= 0",
        ),
        (
            'webhook_url = "ftp://x"',
            "[plugins.budget] key `webhook_url`: must be an http:// or https:// URL",
        ),
        ('period = "yearly"', "[plugins.budget] key `period`"),
        ("budget_usd = 5.0", "[plugins.budget] key `budget_usd`: unknown key"),
    ],
)
async def test_a_configuration_mistake_is_one_clear_line(
    tmp_path: Path, table: str, message: str
) -> None:
    text = f'[store]\nurl = "sqlite:///{tmp_path}/g.db"\n[plugins.budget]\n{table}\n'
    assert message in await start_up_error(text, tmp_path)


class GatedStore:
    """A real store whose first transaction waits for `release` before it begins."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.begun = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        self.begun += 1
        self.entered.set()
        await self.release.wait()
        async with self.store.transaction() as tx:
            yield tx


async def test_rows_that_arrive_during_a_commit_linger_for_the_next_group(tmp_path: Path) -> None:
    """Under steady load the writer does not commit back to back, a few rows at a time:
    what arrived while a commit ran waits out the linger like the first row did."""
    store = await open_store(f"sqlite:///{tmp_path}/ledger.db")
    try:
        await store.migrate("budget", MIGRATIONS)
        gated = GatedStore(store)
        writer = LedgerWriter(gated, _spawn, Log(), linger_s=0.001)  # type: ignore[arg-type]
        writer.add(_row(0))
        await gated.entered.wait()  # the first group's commit has begun
        writer._linger_s = 3600.0  # from now on, only a flush ends a linger
        for i in range(1, 6):
            writer.add(_row(i))  # while that commit runs
        gated.release.set()
        for _ in range(100):  # the writer's turn, many times over (no clock involved)
            await asyncio.sleep(0)
        assert gated.begun == 1  # the five rows wait for the linger, not a commit each
        assert len(await store.fetchall("SELECT id FROM spend_ledger")) == 1
        await writer.flush()
        assert gated.begun == 2  # one commit for the five
        assert len(await store.fetchall("SELECT id FROM spend_ledger")) == 6
        await writer.close()
    finally:
        await store.close()
