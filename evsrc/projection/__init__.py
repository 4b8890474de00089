"""Projectors: fold the store's events, in global order, into a read model, with checkpoints.

A :class:`Projector` says what to do with each event — methods marked
:func:`handles` receive the decoded model (or override :meth:`Projector.handle`
for raw :class:`~evsrc.records.RecordedEvent`). A :class:`ProjectionRunner`
feeds it from ``store.subscribe(after=checkpoint)``, reading only the event
types its handlers take (and its ``stream_prefix``), in batches, and saves the
checkpoint in a :class:`CheckpointStore`, so a restart resumes exactly after
the last batch saved.

Deployed, several runners of one projection may run at once (app replicas):
one is *active*, the others stand by and take over when it stops or dies.
A checkpoint write names the checkpoint it replaces and is refused when that
is no longer the saved one, so a runner that lost its place without noticing
can never apply a batch a second time. Faults (a lost connection, a restarting
server) never end ``run()``: it retries with capped, jittered backoff and
resumes after the last saved checkpoint. Only the projector's own error stops
it, with :class:`~evsrc.errors.ProjectionError`, the checkpoint left *before*
the event that failed. ``docs/framework.md`` ("Projections as deployed") has
the long form.

With a separate read-model store, delivery is at least once: a crash between
the handler's write and the checkpoint save replays that batch on restart. On
PostgreSQL, :class:`evsrc.postgres.projection.PostgresProjectionRunner`
commits a batch's read-model change and its checkpoint in one transaction:
exactly once.

The package, one concern a module (every public name is imported from here)::

    projector.py    Projector, @handles
    checkpoints.py  CheckpointStore, InMemoryCheckpointStore
    policy.py       FailurePolicy
    runner.py       ProjectionRunner: the public methods, composing the rest
    steps.py        the storage steps a backend's runner overrides
    lease.py        one active runner per projection (the in-process lease)
    session.py      stand by, catch up, then follow live; faults retried
    applier.py      batches under the failure policy: retry, stop, park
    waits.py        waits that stop() and a lost lease cut short
    progress.py     states, Lag, waiting for a checkpoint
"""

from __future__ import annotations

from evsrc.projection.checkpoints import (
    CheckpointStore as CheckpointStore,
    InMemoryCheckpointStore as InMemoryCheckpointStore,
)
from evsrc.projection.lease import _LeaseLostError as _LeaseLostError
from evsrc.projection.policy import FailurePolicy as FailurePolicy
from evsrc.projection.progress import (
    CATCHING_UP as CATCHING_UP,
    RUNNING as RUNNING,
    STANDBY as STANDBY,
    STOPPED as STOPPED,
    Lag as Lag,
)
from evsrc.projection.projector import (
    Projector as Projector,
    handles as handles,
    overrides_handle_batch as overrides_handle_batch,
)
from evsrc.projection.runner import ProjectionRunner as ProjectionRunner

__all__ = [
    "CheckpointStore",
    "FailurePolicy",
    "InMemoryCheckpointStore",
    "Lag",
    "ProjectionRunner",
    "Projector",
    "handles",
]
