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
