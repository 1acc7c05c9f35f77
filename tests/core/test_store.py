"""The durable store: one suite, run against the SQLite store and the PostgreSQL store.

Each PostgreSQL test gets a schema of its own (`?schema=`), dropped afterwards, so tests
never see each other's tables or migration records.
"""

from __future__ import annotations

import asyncio
import socket
import traceback
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from interlock.core.config import ConfigError
from interlock.core.store import Migration, Store, StoreError, open_store
from interlock.core.store.placeholders import numbered
from tests.support import GUARD

PG = "postgresql://postgres@127.0.0.1:5432/test"


class Boom(Exception):
    pass


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A PostgreSQL url whose search_path is a fresh schema, dropped afterwards."""
    try:
        admin = await asyncpg.connect(PG, timeout=GUARD)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG}: {exc}")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    await admin.execute(f"CREATE SCHEMA {schema}")  # our own generated name
    try:
        yield f"{PG}?schema={schema}&pool_max=4"  # few connections: suites may run side by side
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def store(url: str) -> AsyncIterator[Store]:
    opened = await open_store(url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[Store]:
    opened = await open_store(pg_url)
    try:
        yield opened
    finally:
        await opened.close()


async def make_people(store: Store) -> None:
    await store.execute(
        "CREATE TABLE people (id BIGINT PRIMARY KEY, name TEXT NOT NULL, score DOUBLE PRECISION)"
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def formatted(exc: BaseException) -> str:
    """Everything a logged traceback would show, causes included."""
    return "".join(traceback.format_exception(exc))


# -- statements outside a transaction ---------------------------------------------------


async def test_execute_and_fetch_round_trip_with_parameters(store: Store) -> None:
    await make_people(store)
    insert = "INSERT INTO people (id, name, score) VALUES (?, ?, ?)"
    assert await store.execute(insert, (1, "ada", 1.5)) == 1
    assert await store.execute(insert, [2, "bob", None]) == 1

    assert await store.fetchall("SELECT id, name, score FROM people ORDER BY id") == [
        (1, "ada", 1.5),
        (2, "bob", None),
    ]
    assert await store.fetchone("SELECT name FROM people WHERE id = ?", (2,)) == ("bob",)
    assert await store.fetchone("SELECT name FROM people WHERE id = ?", (3,)) is None
    assert await store.execute("UPDATE people SET score = ? WHERE id > ?", (0.5, 0)) == 2
    assert await store.execute("DELETE FROM people WHERE name = ?", ("nobody",)) == 0
    assert await store.execute("DELETE FROM people WHERE name = ?", ("bob",)) == 1


async def test_a_question_mark_inside_a_literal_is_text_not_a_placeholder(store: Store) -> None:
    await make_people(store)
    await store.execute("INSERT INTO people (id, name) VALUES (?, '?')", (1,))
    assert await store.fetchall("SELECT name, ? FROM people WHERE name = '?'", ("x",)) == [
        ("?", "x")
    ]


async def test_executemany_inserts_every_row(store: Store) -> None:
    await make_people(store)
    rows = [(i, f"person {i}", i / 2) for i in range(1, 101)]
    await store.executemany("INSERT INTO people (id, name, score) VALUES (?, ?, ?)", rows)
    await store.executemany("INSERT INTO people (id, name) VALUES (?, ?)", [])
    assert await store.fetchall("SELECT id, name, score FROM people ORDER BY id") == rows


async def test_executemany_is_all_or_nothing(store: Store) -> None:
    await make_people(store)
    rows = [(1, "a"), (2, "b"), (1, "a again")]  # the third breaks the primary key
    with pytest.raises(StoreError):
        await store.executemany("INSERT INTO people (id, name) VALUES (?, ?)", rows)
    assert await store.fetchall("SELECT id FROM people") == []


async def test_sql_errors_are_store_errors_that_quote_no_value(store: Store) -> None:
    await store.execute("CREATE TABLE keys (id BIGINT PRIMARY KEY, digest TEXT UNIQUE)")
    canary = "sk-canary-0123456789"
    await store.execute("INSERT INTO keys (id, digest) VALUES (?, ?)", (1, canary))
    with pytest.raises(StoreError) as err:
        await store.execute("INSERT INTO keys (id, digest) VALUES (?, ?)", (2, canary))
    assert "unique" in str(err.value).lower()
    assert canary not in formatted(err.value)
    with pytest.raises(StoreError):
        await store.fetchall("SELEC nonsense")


async def test_foreign_keys_are_enforced(store: Store) -> None:
    await store.execute("CREATE TABLE tenants (id BIGINT PRIMARY KEY)")
    await store.execute(
        "CREATE TABLE vkeys (id BIGINT PRIMARY KEY, tenant BIGINT NOT NULL REFERENCES tenants (id))"
    )
    with pytest.raises(StoreError):
        await store.execute("INSERT INTO vkeys (id, tenant) VALUES (?, ?)", (1, 42))


async def test_an_injection_attempt_in_a_parameter_is_stored_as_data(store: Store) -> None:
    await make_people(store)
    evils = ["x'); DROP TABLE people; --", "? $1 '?' -- ?", 'Robert"); DELETE FROM people; --']
    for i, evil in enumerate(evils):
        await store.execute("INSERT INTO people (id, name) VALUES (?, ?)", (i, evil))
    for evil in evils:
        assert await store.fetchone("SELECT name FROM people WHERE name = ?", (evil,)) == (evil,)
    assert await store.fetchall("SELECT id FROM people ORDER BY id") == [(0,), (1,), (2,)]


async def test_unicode_and_bytes_round_trip(store: Store) -> None:
    blobs = Migration(
        1,
        ("CREATE TABLE blobs (id BIGINT PRIMARY KEY, label TEXT NOT NULL, data BLOB NOT NULL)",),
        postgresql=(
            "CREATE TABLE blobs (id BIGINT PRIMARY KEY, label TEXT NOT NULL, data BYTEA NOT NULL)",
        ),
    )
    assert await store.migrate("blobs", [blobs]) == [1]
    rows = [
        (1, "héllo wörld", bytes(range(256))),
        (2, "日本語のテキスト", b"\x00\x00\xff"),
        (3, "🦊🚀 emoji, e\u0301 combining, \u2028 separator", "🦊".encode()),
        (4, "שלום right to left", b""),
        (5, "", b"\x00"),
    ]
    await store.executemany("INSERT INTO blobs (id, label, data) VALUES (?, ?, ?)", rows)
    assert await store.fetchall("SELECT id, label, data FROM blobs ORDER BY id") == rows
    found = await store.fetchone("SELECT id FROM blobs WHERE data = ?", (bytes(range(256)),))
    assert found == (1,)


# -- transactions -----------------------------------------------------------------------


async def test_a_transaction_commits_on_exit(store: Store, url: str) -> None:
    await make_people(store)
    async with store.transaction() as tx:
        assert await tx.execute("INSERT INTO people (id, name) VALUES (?, ?)", (1, "a")) == 1
        await tx.executemany("INSERT INTO people (id, name) VALUES (?, ?)", [(2, "b"), (3, "c")])
        assert await tx.fetchone("SELECT COUNT(*) FROM people") == (3,)
        assert await tx.fetchall("SELECT id FROM people WHERE id > ?", (1,)) == [(2,), (3,)]
    other = await open_store(url)  # another connection sees the committed rows
    try:
        assert await other.fetchall("SELECT id FROM people ORDER BY id") == [(1,), (2,), (3,)]
    finally:
        await other.close()


async def test_an_exception_rolls_back_and_propagates_unchanged(store: Store) -> None:
    await make_people(store)
    with pytest.raises(Boom):
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO people (id, name) VALUES (?, ?)", (1, "a"))
            await tx.executemany("INSERT INTO people (id, name) VALUES (?, ?)", [(2, "b")])
            raise Boom
    assert await store.fetchall("SELECT id FROM people") == []


async def test_a_failing_statement_rolls_back_the_whole_transaction(store: Store) -> None:
    await make_people(store)
    with pytest.raises(StoreError):
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO people (id, name) VALUES (?, ?)", (1, "a"))
            await tx.execute("INSERT INTO people (id, name) VALUES (?, ?)", (1, "dup"))
    assert await store.fetchall("SELECT id FROM people") == []


async def test_a_cancelled_transaction_rolls_back_and_the_store_stays_usable(store: Store) -> None:
    await make_people(store)
    inside = asyncio.Event()

    async def writer() -> None:
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO people (id, name) VALUES (?, ?)", (1, "a"))
            inside.set()
            await asyncio.Event().wait()  # until cancelled

    async with asyncio.timeout(GUARD):
        task = asyncio.create_task(writer())
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await store.fetchall("SELECT id FROM people") == []
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO people (id, name) VALUES (?, ?)", (2, "b"))
        assert await store.fetchall("SELECT id FROM people") == [(2,)]


async def test_a_transaction_cancelled_while_it_begins_leaves_the_store_usable(
    store: Store,
) -> None:
    await make_people(store)

    async def writer() -> None:
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO people (id, name) VALUES (?, ?)", (1, "never"))

    async with asyncio.timeout(GUARD):
        task = asyncio.create_task(writer())
        await asyncio.sleep(0)  # one turn of the loop: the task is now waiting on BEGIN
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO people (id, name) VALUES (?, ?)", (2, "b"))
        assert await store.fetchall("SELECT id FROM people") == [(2,)]


async def test_an_open_transaction_is_invisible_to_other_callers(store: Store) -> None:
    await make_people(store)
    inserted, release = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO people (id, name) VALUES (?, ?)", (1, "uncommitted"))
            inserted.set()
            await release.wait()
            raise Boom

    async with asyncio.timeout(GUARD):
        writing = asyncio.create_task(writer())
        await inserted.wait()
        reader = asyncio.create_task(store.fetchall("SELECT name FROM people"))
        await asyncio.sleep(0)  # one turn of the loop: the reader issues its query (or queues)
        release.set()
        with pytest.raises(Boom):
            await writing
        assert await reader == []


async def test_concurrent_transactions_on_one_store_do_not_interleave(store: Store) -> None:
    await store.execute("CREATE TABLE counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
    await store.execute("CREATE TABLE ledger (id BIGINT PRIMARY KEY)")
    await store.execute("INSERT INTO counter (id, n) VALUES (?, ?)", (1, 0))

    async def spend(i: int) -> None:
        async with store.transaction() as tx:
            await tx.execute("UPDATE counter SET n = n + 1 WHERE id = ?", (1,))
            await tx.execute("INSERT INTO ledger (id) VALUES (?)", (i,))

    async with asyncio.timeout(GUARD):
        await asyncio.gather(
            *(spend(i) for i in range(30)),
            *(store.fetchall("SELECT n FROM counter") for _ in range(30)),
        )
    assert await store.fetchone("SELECT n FROM counter WHERE id = ?", (1,)) == (30,)
    assert await store.fetchone("SELECT COUNT(*) FROM ledger") == (30,)


async def test_the_store_itself_is_refused_inside_its_own_transaction(store: Store) -> None:
    await make_people(store)
    async with asyncio.timeout(GUARD):  # on SQLite the mistake would otherwise wait forever
        with pytest.raises(StoreError, match="inside its own transaction"):
            async with store.transaction() as tx:
                await tx.execute("INSERT INTO people (id, name) VALUES (?, ?)", (1, "a"))
                await store.execute("INSERT INTO people (id, name) VALUES (?, ?)", (2, "b"))
        with pytest.raises(StoreError, match="do not nest"):
            async with store.transaction(), store.transaction():
                pass
    assert await store.fetchall("SELECT id FROM people") == []


async def test_a_transaction_cannot_be_used_after_it_ended(store: Store) -> None:
    async with store.transaction() as tx:
        pass
    with pytest.raises(StoreError, match="ended"):
        await tx.fetchall("SELECT 1")


# -- migrations ---------------------------------------------------------------------------

NOTES_V1 = Migration(1, ("CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL)",))
NOTES_V2 = Migration(2, ("ALTER TABLE notes ADD COLUMN tag TEXT",))
NOTES_V3 = Migration(3, ("CREATE INDEX notes_by_tag ON notes (tag)",))


def table(version: int, name: str) -> Migration:
    return Migration(version, (f"CREATE TABLE {name} (x BIGINT)",))


async def recorded(store: Store, owner: str) -> list[int]:
    rows = await store.fetchall(
        "SELECT version FROM interlock_migrations WHERE owner = ? ORDER BY version", (owner,)
    )
    return [row[0] for row in rows]


async def test_migrations_apply_once_in_order_and_are_recorded(store: Store, url: str) -> None:
    assert await store.migrate("notes", [NOTES_V2, NOTES_V1]) == [1, 2]
    assert await recorded(store, "notes") == [1, 2]
    stamps = await store.fetchall("SELECT applied_at FROM interlock_migrations")
    assert all(stamp is not None for (stamp,) in stamps)
    await store.execute("INSERT INTO notes (id, body, tag) VALUES (?, ?, ?)", (1, "hi", "t"))

    assert await store.migrate("notes", [NOTES_V1, NOTES_V2]) == []
    assert await store.migrate("notes", [NOTES_V1, NOTES_V2, NOTES_V3]) == [3]
    assert await recorded(store, "notes") == [1, 2, 3]
    assert await store.migrate("other", [table(1, "other_things")]) == [1]

    again = await open_store(url)  # a process started later finds everything applied
    try:
        assert await again.migrate("notes", [NOTES_V1, NOTES_V2, NOTES_V3]) == []
        assert await again.migrate("other", [table(1, "other_things")]) == []
    finally:
        await again.close()
    assert await store.fetchall("SELECT id, body, tag FROM notes") == [(1, "hi", "t")]


async def test_a_missing_version_below_an_applied_one_is_an_error(store: Store) -> None:
    assert await store.migrate("gaps", [table(1, "g1"), table(3, "g3")]) == [1, 3]
    with pytest.raises(StoreError, match="'gaps' version 2"):
        await store.migrate("gaps", [table(1, "g1"), table(2, "g2"), table(3, "g3")])
    assert await recorded(store, "gaps") == [1, 3]
    with pytest.raises(StoreError):
        await store.fetchall("SELECT x FROM g2")


async def test_versions_applied_but_no_longer_declared_are_left_alone(store: Store) -> None:
    assert await store.migrate("roll", [table(1, "r1"), table(2, "r2")]) == [1, 2]
    assert await store.migrate("roll", [table(1, "r1")]) == []  # an older release starting


@pytest.mark.parametrize(
    ("owner", "migrations", "message"),
    [
        ("dup", [table(1, "d1"), table(1, "d1b")], "version 1 twice"),
        ("zero", [table(0, "z0"), table(1, "z1")], "start at 1"),
        ("", [table(1, "e1")], "non-empty"),
    ],
)
async def test_a_malformed_migration_list_is_refused_before_anything_runs(
    store: Store, owner: str, migrations: list[Migration], message: str
) -> None:
    with pytest.raises(StoreError, match=message):
        await store.migrate(owner, migrations)
    assert await recorded(store, owner) == []


async def test_a_failing_migration_rolls_back_and_names_owner_and_version(store: Store) -> None:
    good = table(1, "f1")
    bad = Migration(2, ("CREATE TABLE f2 (x BIGINT)", "INSERT INTO no_such_table VALUES (1)"))
    with pytest.raises(StoreError) as err:
        await store.migrate("flaky", [good, bad])
    assert "'flaky' version 2" in str(err.value)
    assert await recorded(store, "flaky") == [1]
    with pytest.raises(StoreError):  # the table of the failed version's first statement
        await store.fetchall("SELECT x FROM f2")

    fixed = Migration(2, ("CREATE TABLE f2 (x BIGINT)",))
    assert await store.migrate("flaky", [good, fixed]) == [2]
    assert await store.fetchall("SELECT x FROM f2") == []


async def test_processes_migrating_at_once_apply_each_version_exactly_once(url: str) -> None:
    # Each version would fail if applied twice (CREATE TABLE) and logs itself once.
    migrations = [
        Migration(
            1, ("CREATE TABLE race_log (v BIGINT NOT NULL)", "INSERT INTO race_log VALUES (1)")
        ),
        *(
            Migration(
                v, (f"CREATE TABLE race_{v} (x BIGINT)", f"INSERT INTO race_log VALUES ({v})")
            )
            for v in range(2, 11)
        ),
    ]
    stores = [await open_store(url) for _ in range(6)]
    try:
        async with asyncio.timeout(GUARD):
            results = await asyncio.gather(*(s.migrate("race", migrations) for s in stores))
        versions = list(range(1, 11))
        assert sorted(v for applied in results for v in applied) == versions
        logged = await stores[0].fetchall("SELECT v FROM race_log ORDER BY v")
        assert logged == [(v,) for v in versions]
        assert await recorded(stores[0], "race") == versions
    finally:
        for opened in stores:
            await opened.close()


# -- lifecycle and configuration ---------------------------------------------------------


async def test_ping_answers_until_closed(url: str) -> None:
    opened = await open_store(url)
    assert opened.dialect == url.split(":", 1)[0]
    assert await opened.ping() is True
    await opened.close()
    assert await opened.ping() is False


async def test_sqlite_without_a_path_is_in_memory() -> None:
    memory = await open_store("sqlite://")
    try:
        await make_people(memory)
        await memory.execute("INSERT INTO people (id, name) VALUES (?, ?)", (1, "a"))
        assert await memory.fetchall("SELECT name FROM people") == [("a",)]
    finally:
        await memory.close()


async def test_an_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unsupported store 'mysql'"):
        await open_store("mysql://root@127.0.0.1/db")


async def test_unreachable_postgresql_is_a_config_error_without_the_password() -> None:
    port, password = closed_port(), "hunter2-canary"
    with pytest.raises(ConfigError) as err:
        await open_store(f"postgresql://app:{password}@127.0.0.1:{port}/ledger")
    assert f"127.0.0.1:{port}/ledger" in str(err.value)
    assert "as app" in str(err.value)
    assert password not in formatted(err.value)


@pytest.mark.parametrize(
    "query", ["pool_max=0", "pool_max=many", "pool_max=2.5", "command_timeout=-1"]
)
async def test_bad_postgresql_options_are_config_errors(query: str) -> None:
    with pytest.raises(ConfigError, match=query.split("=")[0]):
        await open_store(f"postgresql://app@127.0.0.1:{closed_port()}/db?{query}")


@pytest.mark.services
async def test_postgresql_options_are_ours_and_the_password_is_hidden(pg_url: str) -> None:
    # Trust authentication ignores the password, so the canary one still connects.
    url = pg_url.replace("postgres@", "postgres:pw-canary@").replace("pool_max=4", "pool_max=3")
    opened = await open_store(url)
    try:
        assert opened.url == url.replace("pw-canary", "***")
        assert opened._pool.get_max_size() == 3  # type: ignore[attr-defined]
        assert await opened.ping()
    finally:
        await opened.close()


@pytest.mark.services
async def test_postgresql_data_errors_quote_no_value(pg_store: Store) -> None:
    await pg_store.execute("CREATE TABLE typed (id BIGINT PRIMARY KEY, label TEXT, ref UUID)")
    canary = "sk-canary-9876543210"
    insert = "INSERT INTO typed (id, label, ref) VALUES (?, ?, ?)"
    with pytest.raises(StoreError) as client_side:  # refused by asyncpg before sending
        await pg_store.execute(insert, (canary, "x", None))
    with pytest.raises(StoreError) as in_a_batch:
        await pg_store.executemany(insert, [(1, "x", None), (2, "y", canary)])
    with pytest.raises(StoreError) as server_side:  # refused by the server, which quotes it
        await pg_store.fetchall("SELECT CAST(CAST(? AS TEXT) AS BIGINT)", (canary,))
    for err in (client_side, in_a_batch, server_side):
        assert canary not in formatted(err.value)
    assert "argument $1" in str(client_side.value)  # still says which argument
    assert "argument $3 in element #1" in str(in_a_batch.value)


# -- the placeholder rewrite for PostgreSQL ------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", "SELECT 1"),
        ("SELECT ?", "SELECT $1"),
        ("INSERT INTO t VALUES (?, ?, ?)", "INSERT INTO t VALUES ($1, $2, $3)"),
        ("SELECT '?', ?", "SELECT '?', $1"),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"),
        ('SELECT "odd?column" FROM t WHERE x = ?', 'SELECT "odd?column" FROM t WHERE x = $1'),
        ("SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"),
        ("SELECT /* ? */ ?", "SELECT /* ? */ $1"),
        ("SELECT ?||'unterminated ?", "SELECT $1||'unterminated ?"),
    ],
)
def test_question_marks_become_numbered_placeholders(sql: str, expected: str) -> None:
    assert numbered(sql) == expected
