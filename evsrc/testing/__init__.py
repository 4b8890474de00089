"""Kit for testing evsrc applications and backends.

- :mod:`evsrc.testing.stores` — test doubles: real stores with a hook at the
  moment of an append (racing writers, lost replies, gates, latency, counts).
- :mod:`evsrc.testing.spec` — given/when/then for decisions
  (:class:`~evsrc.testing.spec.DecisionSpec`), no store needed.
- :class:`StreamLifecycleContract` — delete, truncate and retention, the same
  way (subclass it beside ``EventStoreContract``).
- :class:`EventStoreContract` — the store contract as importable pytest
  tests. A backend proves it keeps the contract by subclassing it in its own
  test suite and supplying a ``store`` fixture that yields a fresh, empty,
  set-up store::

    import pytest
    from evsrc.testing import EventStoreContract

    class TestMyStore(EventStoreContract):
        @pytest.fixture
        async def store(self):
            async with await MyStore.connect(...) as store:
                yield store

The contract needs pytest, pytest-asyncio and hypothesis (``pip install
'evsrc[testing]'``); it is imported on first use, so the stores and the spec
work without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evsrc.testing.spec import DecisionSpec as DecisionSpec
from evsrc.testing.stores import (
    GateStore as GateStore,
    LatencyStore as LatencyStore,
    LostReplyStore as LostReplyStore,
    ProxyStore as ProxyStore,
    RacingStore as RacingStore,
    YieldingStore as YieldingStore,
)

if TYPE_CHECKING:
    from evsrc.testing.contract import (
        EventStoreContract as EventStoreContract,
        StreamLifecycleContract as StreamLifecycleContract,
    )

__all__ = [
    "DecisionSpec",
    "EventStoreContract",
    "GateStore",
    "LatencyStore",
    "LostReplyStore",
    "ProxyStore",
    "RacingStore",
    "StreamLifecycleContract",
    "YieldingStore",
]


def __getattr__(name: str) -> Any:
    if name == "EventStoreContract":
        from evsrc.testing.contract import EventStoreContract

        return EventStoreContract
    if name == "StreamLifecycleContract":
        from evsrc.testing.contract import StreamLifecycleContract

        return StreamLifecycleContract
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
