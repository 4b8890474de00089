"""Finding the backend under store wrappers.

Wrappers (:class:`~evsrc.store.DelegatingStore` subclasses: telemetry,
personal-data encryption, compression, test doubles) keep the store they wrap
in ``inner``. Code that needs the backend itself — a transactional projection
runner needs its connections — finds it with :func:`innermost`, while it still
reads events through the outermost wrapper.
"""

from __future__ import annotations

from typing import TypeVar

from evsrc.errors import ConfigurationError
from evsrc.store import DelegatingStore, EventStore

__all__ = ["innermost"]

S = TypeVar("S", bound=EventStore)


def innermost(store: EventStore, kind: type[S], *, needed_by: str) -> S:
    """``store`` itself if it is a ``kind``, else the first ``kind`` found in its ``inner`` chain.

    Raises ``ConfigurationError`` (naming ``needed_by``) when there is none.
    """
    current: EventStore = store
    for _ in range(64):  # a cycle of wrappers is a bug, not a reason to hang
        if isinstance(current, kind):
            return current
        if not isinstance(current, DelegatingStore):
            break
        current = current.inner
    msg = f"{needed_by} needs a {kind.__name__} (or a wrapper of one), got {type(store).__name__}"
    raise ConfigurationError(msg)
