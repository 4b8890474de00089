"""How an aggregate's folds are found, and the registry built from them.

:func:`evsrc.aggregate.applies` marks a fold with the event models it takes
(under :data:`APPLIES_ATTR`); :class:`~evsrc.aggregate.Aggregate` collects
them here, base classes first, and builds its registry from them when it
declares none.
"""

from __future__ import annotations

from typing import Final

from evsrc._annotated import Deferred
from evsrc.errors import AggregateError
from evsrc.models import Event, EventRegistry

__all__ = ["APPLIES_ATTR", "collect_folds", "registry_from"]

#: The attribute of a fold that holds the event models (or deferred annotations) it takes.
APPLIES_ATTR: Final = "__evsrc_applies__"


def collect_folds(cls: type) -> dict[type[Event], str]:
    """Fold method name per event model of ``cls``; ``NameError`` for an unresolved annotation."""
    appliers: dict[type[Event], str] = {}
    # Base classes first, so that a subclass's fold overrides its parent's.
    for klass in reversed(cls.__mro__):
        for name, member in vars(klass).items():
            for t in getattr(member, APPLIES_ATTR, ()):
                for model in t.resolve() if isinstance(t, Deferred) else (t,):
                    appliers[model] = name
    return appliers


def registry_from(cls: type, appliers: dict[type[Event], str]) -> EventRegistry:
    """A registry of the events ``cls`` folds; ``AggregateError`` for a base of events."""
    registry = EventRegistry()
    for t in appliers:
        if "__evsrc_declared__" not in t.__dict__:
            msg = (
                f"{cls.__qualname__} folds {t.__qualname__}, which declares no event "
                "type (a base of events): give the aggregate an explicit registry"
            )
            raise AggregateError(msg)
        registry.register(t)
    return registry
