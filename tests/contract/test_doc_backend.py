"""The store contract on the one-file backend that docs/backends.md, "Writing a backend", shows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from evsrc.testing import EventStoreContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from evsrc.store import EventStore

DOC = Path(__file__).resolve().parents[2] / "docs" / "backends.md"


def _doc_backend() -> type[EventStore]:
    """Run the first python block under "## Writing a backend"; return its store class."""
    text = DOC.read_text(encoding="utf-8").split("## Writing a backend", 1)[1]
    match = re.search(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert match is not None, "docs/backends.md shows no backend"
    namespace: dict[str, Any] = {"__name__": "doc_backend"}
    exec(compile(match.group(1), str(DOC), "exec"), namespace)
    store_class: type[EventStore] = namespace["DictEventStore"]
    return store_class


DictEventStore = _doc_backend()


class TestDocBackend(EventStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        async with DictEventStore() as store:
            yield store
