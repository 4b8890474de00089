"""The command handler's retry policy: how often to decide again, how long to pause.

A :class:`RetryPolicy` is one frozen value: ``max_attempts`` bounds
decide+append rounds per command (each conflict means another writer made
progress), ``backoff`` and ``max_backoff`` shape the full-jitter exponential
pause between rounds, and ``unknown_retries`` bounds re-sends of an append (or
a read) that the store could not answer. Re-sending an append is safe: appends
are idempotent by event id.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from evsrc.errors import InvalidInputError, OutcomeUnknownError, StoreUnavailableError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evsrc.records import Committed, Conflict, NewEvent, RecordedEvent
    from evsrc.store import EventStore

__all__ = ["RetryPolicy"]

log = logging.getLogger("evsrc.handler")


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        msg = f"{name} must be an int >= {low}, got {value!r}"
        raise InvalidInputError(msg, argument=name, value=value)


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        msg = f"{name} must be a number >= 0, got {value!r}"
        raise InvalidInputError(msg, argument=name, value=value)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a :class:`~evsrc.handler.CommandHandler` retries.

    ``max_attempts``: decide+append rounds per command; conflicts past it
    raise ``RetriesExhaustedError``. ``backoff``: the base, in seconds, of the
    jittered exponential pause between rounds, capped at ``max_backoff``.
    ``unknown_retries``: re-sends of an append (or re-reads) while the store
    is unavailable, before its error reaches the caller.
    """

    max_attempts: int = 16
    backoff: float = 0.001
    max_backoff: float = 0.1
    unknown_retries: int = 3

    def __post_init__(self) -> None:
        _check_int("max_attempts", self.max_attempts, 1)
        _check_int("unknown_retries", self.unknown_retries, 0)
        _check_seconds("backoff", self.backoff)
        _check_seconds("max_backoff", self.max_backoff)

    @classmethod
    def merged(cls, policy: RetryPolicy | None = None, **overrides: Any) -> RetryPolicy:
        """``policy`` (default: ``RetryPolicy()``) with the fields in ``overrides`` not None."""
        if policy is None:
            policy = cls()
        elif not isinstance(policy, RetryPolicy):
            msg = f"retry must be a RetryPolicy, got {type(policy).__name__}"
            raise InvalidInputError(msg, argument="retry", value=policy)
        given = {k: v for k, v in overrides.items() if v is not None}
        return dataclasses.replace(policy, **given) if given else policy

    def pause(self, attempt: int) -> float:
        """Seconds to wait before round ``attempt + 1``: full-jitter exponential backoff."""
        ceiling = min(self.max_backoff, self.backoff * (2 ** min(attempt - 1, 30)))
        return random.uniform(0, ceiling)

    async def append(
        self,
        store: EventStore,
        stream: str,
        expected: int,
        events: Sequence[NewEvent],
        *,
        failed: StoreUnavailableError | None = None,
    ) -> Committed | Conflict:
        """``append_expect``, re-sending the same events while the store is unavailable.

        Re-sending is safe whether or not an earlier try committed: the event
        ids make it idempotent. If any try's outcome was unknown, giving up
        raises ``OutcomeUnknownError`` even when the last try failed cleanly.
        ``failed``: the error of a first try the caller already made.
        """
        tries = 0
        unknown: OutcomeUnknownError | None = None
        while True:
            if failed is None:
                try:
                    return await store.append_expect(stream, expected, events)
                except StoreUnavailableError as first:
                    failed = first
            exc, failed = failed, None
            if isinstance(exc, OutcomeUnknownError):
                unknown = exc
            tries += 1
            if tries > self.unknown_retries:
                if unknown is not None and unknown is not exc:
                    msg = (
                        f"an append to {stream!r} was interrupted and re-sending it "
                        f"failed {tries - 1} times; it may have committed ({exc})"
                    )
                    raise OutcomeUnknownError(msg, stream=stream) from exc
                raise exc
            log.info("append to %r failed (%s); re-sending (%d)", stream, exc, tries)
            await anyio.sleep(self.pause(tries))

    async def read(
        self,
        store: EventStore,
        stream: str,
        after: int,
        *,
        failed: StoreUnavailableError | None = None,
    ) -> list[RecordedEvent]:
        """``read(stream, after=after)``, retried while the store is unavailable.

        ``failed``: the error of a first try the caller already made.
        """
        tries = 0
        while True:
            if failed is None:
                try:
                    return await store.read(stream, after=after)
                except StoreUnavailableError as first:
                    failed = first
            err, failed = failed, None
            tries += 1
            if tries > self.unknown_retries:
                raise err
            log.info("read of %r failed (%s); retrying (%d)", stream, err, tries)
            await anyio.sleep(self.pause(tries))
