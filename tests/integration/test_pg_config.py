"""Misconfiguration is ConfigurationError (fix, don't retry); outages are StoreUnavailableError."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import asyncpg
import pytest

from evsrc import ConfigurationError, NewEvent, StoreUnavailableError, open_store
from evsrc.postgres import PostgresEventStore
from tests.integration._clusters import cluster
from tests.pgfixtures import admin_dsn, dsn_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.postgres


def with_path(dsn: str, user: str | None = None, database: str | None = None) -> str:
    scheme, rest = dsn.split("://", 1)
    netloc, _, db = rest.partition("/")
    host = netloc.rsplit("@", 1)[-1]
    return f"{scheme}://{user or 'postgres'}@{host}/{database or db}"


async def refused(dsn: str, **options: object) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        await PostgresEventStore.connect(dsn, min_size=1, max_size=1, timeout=5, **options)
    assert not isinstance(info.value, StoreUnavailableError)
    return info.value


async def test_unknown_database() -> None:
    name = f"evsrc13_missing_{uuid.uuid4().hex[:8]}"
    err = await refused(dsn_for(name))
    assert name in str(err) and "does not exist" in str(err)


async def test_unknown_role() -> None:
    role = f"evsrc13_nobody_{uuid.uuid4().hex[:8]}"
    err = await refused(with_path(admin_dsn(), user=role))
    assert role in str(err)


@pytest.mark.parametrize(
    "tail",
    [
        ":notaport/postgres",  # asyncpg's DSN parser
        ":5432/postgres?sslmode=bogus",  # an option asyncpg refuses
        ":5432/postgres?no_such_setting=1",  # a server setting the server refuses
    ],
)
async def test_malformed_dsn_never_prints_the_password(tail: str) -> None:
    host = admin_dsn().split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
    dsn = f"postgresql://postgres:s3cretpw@{host}{tail}"
    err = await refused(dsn)
    assert "s3cretpw" not in str(err)
    assert "***" in str(err)


async def test_open_store_passes_configuration_errors_through() -> None:
    name = f"evsrc13_missing_{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConfigurationError):
        await open_store(dsn_for(name))


async def test_unreachable_is_still_unavailable() -> None:
    with pytest.raises(StoreUnavailableError):
        await PostgresEventStore.connect("postgresql://postgres@127.0.0.1:1/x", timeout=2)


@pytest.fixture
async def weak_role(pg_dsn: str) -> AsyncIterator[str]:
    """A login role with table privileges on the test database's evsrc schema, no CREATE."""
    role = f"evsrc13_weak_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_dsn)
    database = pg_dsn.rsplit("/", 1)[1]
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        await admin.execute(f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC')
        await admin.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        await admin.execute(f'GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO "{role}"')
        await admin.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
        yield with_path(pg_dsn, user=role)
    finally:
        await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.close()
        # The role owns nothing else; the database goes with the test.
        other = await asyncpg.connect(admin_dsn())
        try:
            await other.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
            )
            await other.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await other.close()


async def test_missing_privilege_is_configuration(weak_role: str) -> None:
    async with await PostgresEventStore.connect(weak_role, min_size=1, max_size=2) as store:
        # The schema exists and is current: setup() has nothing to create and succeeds.
        await store.setup()
        r = await store.append("s", [NewEvent("e")])
        assert r.last_seq == 1
    # A schema that does not exist yet cannot be created without CREATE on the database.
    async with await PostgresEventStore.connect(
        weak_role, schema="evsrc13_new", min_size=1, max_size=1
    ) as store:
        with pytest.raises(ConfigurationError) as info:
            await store.setup()
        assert "permission denied" in str(info.value)


async def test_bad_password_is_configuration_and_is_never_printed() -> None:
    with cluster("auth", 5441, "--auth-local=trust", "--auth-host=scram-sha-256") as dsn:
        port = int(dsn.rsplit(":", 1)[1].split("/")[0])
        local = await asyncpg.connect(host="/var/run/postgresql", port=port, user="postgres")
        try:
            await local.execute("ALTER ROLE postgres PASSWORD 'right-pw'")
        finally:
            await local.close()
        good = f"postgresql://postgres:right-pw@127.0.0.1:{port}/postgres"
        async with await PostgresEventStore.connect(good, min_size=1, max_size=1) as store:
            await store.setup()
        bad = f"postgresql://postgres:wrong-pw-42@127.0.0.1:{port}/postgres"
        err = await refused(bad)
        assert "password authentication failed" in str(err)
        assert "wrong-pw-42" not in str(err) and "wrong-pw-42" not in repr(err.__cause__)
        with pytest.raises(ConfigurationError) as info:
            await open_store(bad)
        assert "wrong-pw-42" not in str(info.value)
