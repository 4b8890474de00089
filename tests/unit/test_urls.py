"""open_store: stores by URL."""

from __future__ import annotations

import pytest

from evsrc import ConfigurationError, open_store
from evsrc.memory import InMemoryEventStore
from evsrc.urls import redact_url


async def test_memory_url() -> None:
    store = await open_store("memory:")
    assert isinstance(store, InMemoryEventStore)
    await store.close()


@pytest.mark.parametrize(
    "url", ["", "nope", "mysql://x/y", "http://example/", "memory:x", "://", 42, None]
)
async def test_unknown_or_malformed_urls_are_configuration_errors(url: object) -> None:
    with pytest.raises(ConfigurationError):
        await open_store(url)  # type: ignore[arg-type]


async def test_memory_takes_no_options() -> None:
    with pytest.raises(ConfigurationError):
        await open_store("memory:", bogus=1)


def test_redact_url_hides_passwords() -> None:
    assert redact_url("postgresql://u:s3cret@h/db") == "postgresql://u:***@h/db"
    assert "s3cret" not in redact_url("postgresql://u:s3cret@h:5/db?x=1")
    assert redact_url("sqlite:///a.db") == "sqlite:///a.db"


async def test_sqlite_relative_and_absolute_urls(tmp_path, monkeypatch) -> None:
    from evsrc import NewEvent
    from evsrc.sqlite import SqliteEventStore

    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///rel/../data.db")
    try:
        assert isinstance(store, SqliteEventStore)
        assert store.synchronous == "FULL"
        await store.append("s", [NewEvent("t")])  # set up: the schema exists
    finally:
        await store.close()
    assert (tmp_path / "data.db").exists()
    absolute = tmp_path / "with space" / "abs.db"
    absolute.parent.mkdir()
    url = "sqlite:///" + str(absolute).replace(" ", "%20")
    assert url.startswith("sqlite:////")
    store = await open_store(url + "?synchronous=normal&busy_timeout=2.5")
    try:
        assert isinstance(store, SqliteEventStore)
        assert store.path == str(absolute)
        assert store.synchronous == "NORMAL"
        assert await store.last_seq("s") == 0
    finally:
        await store.close()
    # The same file again: its data is still there (set-up is idempotent).
    async with await open_store("sqlite:///data.db") as again:
        assert await again.last_seq("s") == 1


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:",
        "sqlite://",
        "sqlite:///",
        "sqlite:relative.db",
        "sqlite://host/x.db",
        "sqlite:///dir/",
        "sqlite:///:memory:",
        "sqlite:///x.db?bogus=1",
        "sqlite:///x.db?synchronous=OFF",
        "sqlite:///x.db?busy_timeout=soon",
        "sqlite:///x.db?busy_timeout=-1",
        "sqlite:///x.db?readers=0",
        "sqlite:///x.db?synchronous=FULL&synchronous=NORMAL",
        "sqlite:///x.db?novalue",
        "sqlite:///x.db#frag",
        "sqlite:///missing-dir/x.db",
        "sqlite:///.",
    ],
)
async def test_malformed_sqlite_urls_are_configuration_errors(url, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError):
        await open_store(url)
    assert list(tmp_path.iterdir()) == []  # nothing created


async def test_sqlite_directory_and_not_a_database(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    with pytest.raises(ConfigurationError, match="directory"):
        await open_store("sqlite:///adir")
    (tmp_path / "junk.db").write_bytes(b"this is not a database file" * 100)
    with pytest.raises(ConfigurationError):
        await open_store("sqlite:///junk.db")
    assert (tmp_path / "junk.db").read_bytes() == b"this is not a database file" * 100


async def test_sqlite_options_are_checked(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError):
        await open_store("sqlite:///x.db", bogus=1)
    with pytest.raises(ConfigurationError):
        await open_store("sqlite:///x.db?readers=2", readers=3)
    async with await open_store("sqlite:///x.db", poll_interval=0.05) as store:
        assert await store.last_seq("s") == 0
