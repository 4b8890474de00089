"""The test doubles live in :mod:`evsrc.testing.stores`; re-exported for older imports."""

from evsrc.testing.stores import (
    GateStore as GateStore,
    LatencyStore as LatencyStore,
    LostReplyStore as LostReplyStore,
    ProxyStore as ProxyStore,
    RacingStore as RacingStore,
    YieldingStore as YieldingStore,
)
