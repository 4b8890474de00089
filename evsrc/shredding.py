"""Crypto-shredding: personal fields encrypted per subject, forgotten by deleting a key.

Mark a ``str`` field of an event model as personal::

    class Booked(Event, type="booking"):
        actor: Annotated[str, Personal()]                   # the value is the subject
        note: Annotated[str, Personal(subject="actor")]     # belongs to the actor

and wrap the store: ``ShreddingStore(store, keys, registry)``. On append it
replaces each personal value by ``{"$pii": "<key id>.<ciphertext>"}``
(AES-GCM with the subject's key); on every read it puts the plaintext back.
After ``await store.forget(subject)`` the key is gone and the field decodes
as :func:`redacted` (``"[forgotten:<8 hex digits>]"``, a per-subject
pseudonym that names no one). Why each choice: docs/lifecycle.md,
"Forgetting a person".
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from evsrc.delegating import OpeningStore
from evsrc.errors import EventCodecError, EventDecodeError, InvalidEventError
from evsrc.records import NewEvent
from evsrc.sealing import (
    ENVELOPE_KEY,
    REDACTED_PREFIX,
    envelope_of,
    invalid_tag,
    redacted,
    require_cipher,
    seal,
    unseal,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    import pydantic
    from pydantic_core import CoreSchema

    from evsrc.keys import KeyStore
    from evsrc.models import Event, EventRegistry
    from evsrc.records import Committed, Conflict, RecordedEvent
    from evsrc.store import EventStore

__all__ = [
    "ENVELOPE_KEY",
    "MAX_SCAN_DEPTH",
    "REDACTED_PREFIX",
    "Personal",
    "PersonalField",
    "ShreddingStore",
    "personal_fields",
    "redacted",
]

#: How deep in nested dicts a read looks for sealed values (``payload.actor`` is depth 2).
MAX_SCAN_DEPTH: Final = 4


@dataclass(frozen=True, slots=True)
class Personal:
    """Marks a ``str`` field as personal: ``Annotated[str, Personal()]``.

    ``subject`` names the field (by its name in the stored data) whose value
    identifies the person the field belongs to; by default the field's own
    value is the subject. A non-``str`` field refuses the marker when the
    class is created (``EventCodecError``); ``Annotated[str, Personal()] | None``
    is fine (``None`` is stored as is).
    """

    subject: str | None = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: pydantic.GetCoreSchemaHandler
    ) -> CoreSchema:
        if source is not str:
            msg = (
                f"Personal() marks only str fields (a forgotten value decodes as a "
                f"redacted str), got {source!r}"
            )
            raise EventCodecError(msg)
        return handler(source)


class PersonalField(NamedTuple):
    """A personal field: its path in the data, and that of its subject.

    A path is a key of the data, or dotted keys into nested dicts
    (``"payload.actor"``).
    """

    name: str
    subject: str


_FIELDS: dict[type[Event], tuple[PersonalField, ...]] = {}


def _markers(info: pydantic.fields.FieldInfo) -> list[Personal]:
    # ``Annotated[str, Personal()]`` lands in the field's metadata; inside a union
    # (``Annotated[str, Personal()] | None``) it stays on the union's member.
    found = [m for m in info.metadata if isinstance(m, Personal)]
    for arg in typing.get_args(info.annotation):
        if typing.get_origin(arg) is typing.Annotated:
            found.extend(m for m in arg.__metadata__ if isinstance(m, Personal))
    return found


def personal_fields(model: type[Event]) -> tuple[PersonalField, ...]:
    """The personal fields of ``model`` (cached per model class).

    Raises ``EventCodecError`` if a marker names a subject field the model
    does not have.
    """
    cached = _FIELDS.get(model)
    if cached is not None:
        return cached
    keys = {name: info.alias or name for name, info in model.model_fields.items()}
    stored = set(keys.values())
    out: list[PersonalField] = []
    for name, info in model.model_fields.items():
        for marker in _markers(info):
            subject = keys[name] if marker.subject is None else marker.subject
            if subject not in stored:
                msg = (
                    f"{model.__qualname__}.{name}: Personal(subject={marker.subject!r}) "
                    f"names no field of the model (fields: {sorted(stored)})"
                )
                raise EventCodecError(msg)
            out.append(PersonalField(keys[name], subject))
    result = tuple(out)
    _FIELDS[model] = result
    return result


class ShreddingStore(OpeningStore):
    """An ``EventStore`` that encrypts personal fields on append and decrypts them on read.

    ``registry`` says which fields of which ``(type, version)`` are personal
    (see :class:`Personal`); ``paths`` adds, per event type, personal values
    inside dicts that no model marks, as ``{dotted path: dotted subject
    path}`` (say ``{"evsrc.outbox": {"payload.actor": "payload.actor"}}``).
    Events of other types pass unchanged. ``keys`` holds one key per subject
    (``await keys.setup()`` first). Reads open every sealed value they meet
    (up to ``MAX_SCAN_DEPTH`` dicts deep), whatever the registry says, so old
    versions and upcasters see plaintext too. A value whose key was forgotten
    reads as :func:`redacted`; a sealed value altered at rest raises
    ``EventDecodeError``. ``{"$pii": …}`` is reserved: appending one raises
    ``InvalidEventError``.
    """

    def __init__(
        self,
        inner: EventStore,
        keys: KeyStore,
        registry: EventRegistry,
        *,
        paths: Mapping[str, Mapping[str, str]] | None = None,
        owns_inner: bool = True,
    ) -> None:
        super().__init__(inner, owns_inner=owns_inner)
        self.keys = keys
        self.registry = registry
        require_cipher()  # fail now, not on the first append, if cryptography is missing
        for model in registry:
            personal_fields(model)  # a misdeclared marker fails here, not on first append
        self._extra: dict[str, tuple[PersonalField, ...]] = {}
        for type_, fields in (paths or {}).items():
            self._extra[type_] = tuple(PersonalField(p, subj) for p, subj in fields.items())
        self._plans: dict[tuple[str, int], tuple[PersonalField, ...]] = {}

    async def forget(self, subject: str) -> bool:
        """Delete ``subject``'s key (see :meth:`KeyStore.forget`); whether it had one."""
        return await self.keys.forget(subject)

    # -- append -----------------------------------------------------------------------

    def _plan(self, type_: str, version: int) -> tuple[PersonalField, ...]:
        plan = self._plans.get((type_, version))
        if plan is None:
            try:
                plan = personal_fields(self.registry.model(type_, version))
            except EventCodecError:
                plan = ()
            plan += self._extra.get(type_, ())
            self._plans[(type_, version)] = plan
        return plan

    async def _seal_all(self, events: Sequence[NewEvent]) -> Sequence[NewEvent]:
        if isinstance(events, str | bytes | dict | NewEvent) or not hasattr(events, "__iter__"):
            return events  # the inner store refuses it with its usual error
        events = list(events)
        work: list[tuple[int, NewEvent, list[tuple[str, str, str]]]] = []
        subjects: set[str] = set()
        for i, ev in enumerate(events):
            if type(ev) is not NewEvent or type(ev.data) is not dict:
                continue
            for path, _ in _sealed_values(ev.data, reserved=True):
                msg = f"events[{i}].data.{path}: {{{ENVELOPE_KEY!r}: …}} is reserved"
                raise InvalidEventError(msg, argument=f"events[{i}].data", value=path)
            if type(ev.type) is not str or type(ev.version) is not int:
                continue  # the inner store refuses it with its usual error
            plan = self._plan(ev.type, ev.version)
            todo: list[tuple[str, str, str]] = []
            for f in plan:
                value = _get(ev.data, f.name)
                if value is None:
                    continue
                if type(value) is not str:
                    msg = f"events[{i}].data.{f.name} is personal and must be a str or None"
                    raise InvalidEventError(msg, argument=f"events[{i}].data", value=f.name)
                subject = _get(ev.data, f.subject)
                if type(subject) is not str or not subject:
                    msg = (
                        f"events[{i}].data.{f.name} is personal but its subject field "
                        f"{f.subject!r} holds no subject"
                    )
                    raise InvalidEventError(msg, argument=f"events[{i}].data", value=f.subject)
                subjects.add(subject)  # checked by key_for, before anything is written
                todo.append((f.name, value, subject))
            if todo:
                work.append((i, ev, todo))
        if not work:
            return events
        keys = {s: await self.keys.key_for(s) for s in sorted(subjects)}
        for i, ev, todo in work:
            data = ev.data
            for path, value, subject in todo:
                key = keys[subject]
                data = _set(data, path, seal(key.key_id, key.key, ev.id.bytes, path, value))
            events[i] = NewEvent(ev.type, data, ev.metadata, ev.id, ev.version)
        return events

    async def append_expect(
        self, stream: str, expected: int, events: Sequence[NewEvent]
    ) -> Committed | Conflict:
        """``append_expect`` with personal fields encrypted."""
        return await self.inner.append_expect(stream, expected, await self._seal_all(events))

    async def append(self, stream: str, events: Sequence[NewEvent]) -> Committed:
        """``append`` with personal fields encrypted."""
        return await self.inner.append(stream, await self._seal_all(events))

    # -- reads ------------------------------------------------------------------------

    async def open_events(self, records: list[RecordedEvent]) -> list[RecordedEvent]:
        """``records`` (read from the inner store) with their sealed values opened.

        Every read of this store passes through here; call it directly from code
        that reads the inner store itself.
        """
        found: list[tuple[int, list[tuple[str, tuple[str, bytes]]]]] = []
        wanted: set[str] = set()
        for i, r in enumerate(records):
            sealed = list(_sealed_values(r.data))
            if sealed:
                found.append((i, sealed))
                wanted.update(env[0] for _, env in sealed)
        if not found:
            return records
        keys = await self.keys.keys(wanted)
        out = list(records)
        for i, sealed in found:
            r = records[i]
            data = r.data
            for path, (key_id, body) in sealed:
                key = keys.get(key_id)
                if key is None:
                    data = _set(data, path, redacted(key_id))
                    continue
                try:
                    data = _set(data, path, unseal(key, body, r.id.bytes, path))
                except (invalid_tag(), UnicodeDecodeError) as exc:
                    problem = f"personal field {path!r} was altered at rest"
                    raise EventDecodeError.at(r, problem) from exc
            out[i] = r._replace(data=data)
        return out


def _get(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if type(value) is not dict:
            return None
        value = value.get(part)
    return value


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``path`` set to ``value`` (copying only the dicts on the path)."""
    head, dot, rest = path.partition(".")
    out = dict(data)
    out[head] = _set(data[head], rest, value) if dot else value
    return out


def _sealed_values(
    data: dict[str, Any], *, reserved: bool = False, prefix: str = "", depth: int = 1
) -> Iterator[tuple[str, tuple[str, bytes]]]:
    """``(path, (key id, sealed bytes))`` of every sealed value in ``data``'s nested dicts.

    With ``reserved``, every ``{"$pii": …}`` dict counts, sealed or not (for refusing input).
    """
    for name, value in data.items():
        if type(value) is not dict:
            continue
        path = prefix + name
        if ENVELOPE_KEY in value:
            env = envelope_of(value)
            if env is not None:
                yield path, env
                continue
            if reserved:
                yield path, ("", b"")
                continue
        if depth < MAX_SCAN_DEPTH:
            yield from _sealed_values(value, reserved=reserved, prefix=path + ".", depth=depth + 1)
