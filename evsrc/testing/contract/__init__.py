"""``EventStoreContract``: the tests every ``EventStore`` backend must pass, unchanged.

Subclass it and provide a ``store`` fixture yielding a fresh, empty store. The
class attributes below scale the heavier tests; a backend may lower them to
fit its speed, never to dodge a failure.

Each concern lives in its own mixin module (appends, reads, inputs, retries,
global order, subscriptions, races; deletes, truncation, retention, lifecycle
races). The mixins are listed last-first because pytest runs the tests of base
classes in reverse MRO order, which keeps the tests in their documented order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import pytest

from evsrc.testing.contract.appends import AppendsContract
from evsrc.testing.contract.deletes import DeletesContract
from evsrc.testing.contract.global_order import GlobalOrderContract
from evsrc.testing.contract.helpers import (
    BAD_EVENTS,
    BAD_STREAMS,
    batch,
    ev,
    everything,
    everything_filtered,
)
from evsrc.testing.contract.inputs import InputsContract
from evsrc.testing.contract.lifecycle_races import LifecycleRacesContract
from evsrc.testing.contract.races import RacesContract
from evsrc.testing.contract.reads import ReadsContract
from evsrc.testing.contract.retention import RetentionContract
from evsrc.testing.contract.retries import RetriesContract
from evsrc.testing.contract.subscriptions import SubscriptionsContract
from evsrc.testing.contract.truncation import TruncationContract

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from evsrc.store import EventStore

__all__ = [
    "BAD_EVENTS",
    "BAD_STREAMS",
    "AppendsContract",
    "DeletesContract",
    "EventStoreContract",
    "GlobalOrderContract",
    "InputsContract",
    "LifecycleRacesContract",
    "RacesContract",
    "ReadsContract",
    "RetentionContract",
    "RetriesContract",
    "StreamLifecycleContract",
    "SubscriptionsContract",
    "TruncationContract",
    "batch",
    "ev",
    "everything",
    "everything_filtered",
]

pytestmark = [pytest.mark.asyncio]


class EventStoreContract(
    RacesContract,
    SubscriptionsContract,
    GlobalOrderContract,
    RetriesContract,
    InputsContract,
    ReadsContract,
    AppendsContract,
):
    """The store contract (docs/backends.md). Subclasses supply the ``store`` fixture."""

    #: Tasks racing with observe-and-retry on one stream.
    race_tasks: ClassVar[int] = 1000
    #: Writers and streams in the live-subscriber test.
    subscriber_writers: ClassVar[int] = 16
    subscriber_streams: ClassVar[int] = 48
    subscriber_appends_per_writer: ClassVar[int] = 30
    #: Hypothesis examples for the stateful model test.
    stateful_examples: ClassVar[int] = 30

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        pytest.fail("subclass EventStoreContract and provide a `store` fixture")
        yield  # pragma: no cover


class StreamLifecycleContract(
    LifecycleRacesContract,
    RetentionContract,
    TruncationContract,
    DeletesContract,
):
    """Delete, truncate and retention (docs/lifecycle.md), the same on every backend.

    Subclass it beside :class:`EventStoreContract` with the same ``store``
    fixture. Removing events must never break the global order: a reader sees
    every event still stored exactly once, in order, and every deletion as a
    ``$stream-deleted`` event.
    """

    #: Writers, deleters and rounds in the concurrent lifecycle test.
    lifecycle_writers: ClassVar[int] = 12
    lifecycle_rounds: ClassVar[int] = 15

    @pytest.fixture
    async def store(self) -> AsyncIterator[EventStore]:
        pytest.fail("subclass StreamLifecycleContract and provide a `store` fixture")
        yield  # pragma: no cover
