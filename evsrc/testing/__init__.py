"""The store contract as importable pytest tests.

A backend proves it keeps the contract by subclassing :class:`EventStoreContract`
in its own test suite and supplying a ``store`` fixture that yields a fresh,
empty, set-up store::

    import pytest
    from evsrc.testing import EventStoreContract

    class TestMyStore(EventStoreContract):
        @pytest.fixture
        async def store(self):
            async with await MyStore.connect(...) as store:
                yield store

Requires pytest, pytest-asyncio and hypothesis (the ``dev`` extra).
"""

from evsrc.testing.contract import EventStoreContract as EventStoreContract

__all__ = ["EventStoreContract"]
