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

import base64
import binascii
import hashlib
import hmac
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from evsrc.errors import ConfigurationError, EventCodecError, EventDecodeError, InvalidEventError
from evsrc.keys import check_subject
from evsrc.records import NewEvent
from evsrc.store import DelegatingStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    import pydantic
    from pydantic_core import CoreSchema

    from evsrc.keys import KeyStore
    from evsrc.models import Event, EventRegistry
    from evsrc.records import Checkpoint, Committed, Conflict, RecordedEvent
    from evsrc.store import EventStore

__all__ = [
    "ENVELOPE_KEY",
    "REDACTED_PREFIX",
    "Personal",
    "PersonalField",
    "ShreddingStore",
    "personal_fields",
    "redacted",
]

#: The key of the one-entry dict that replaces a personal value at rest.
ENVELOPE_KEY: Final = "$pii"
#: What a forgotten personal value decodes to starts with this.
REDACTED_PREFIX: Final = "[forgotten:"
_NONCE_BYTES: Final = 12


def _aesgcm() -> Any:
    # Imported on first use, so that models marking fields need no cryptography package.
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - the crypto extra is missing
        msg = "encrypting personal fields needs cryptography: pip install 'evsrc[crypto]'"
        raise ConfigurationError(msg) from exc
    return AESGCM


def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag

    return InvalidTag


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
    """A personal field of a model: its key in the data, and that of its subject."""

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


def redacted(key_id: str) -> str:
    """What a personal value encrypted with the forgotten key ``key_id`` decodes to."""
    return f"{REDACTED_PREFIX}{key_id[:8]}]"


def _associated(event_id: bytes, field: str) -> bytes:
    return event_id + field.encode()


def seal(key_id: str, key: bytes, event_id: bytes, field: str, plaintext: str) -> dict[str, str]:
    """The envelope of ``plaintext``: deterministic for the same key, event, field and text.

    The nonce is an HMAC of the event id, field and plaintext under the key,
    so a re-sent append encrypts to the same bytes (the store then recognises
    it as the same event) and two different plaintexts never share a nonce.
    """
    data = plaintext.encode()
    aad = _associated(event_id, field)
    nonce = hmac.new(key, b"evsrc-nonce\x00" + aad + b"\x00" + data, hashlib.sha256).digest()
    nonce = nonce[:_NONCE_BYTES]
    sealed = nonce + _aesgcm()(key).encrypt(nonce, data, aad)
    return {ENVELOPE_KEY: key_id + "." + base64.urlsafe_b64encode(sealed).decode()}


def envelope_of(value: object) -> tuple[str, bytes] | None:
    """``(key id, sealed bytes)`` if ``value`` is an envelope :func:`seal` made, else ``None``."""
    if type(value) is not dict or len(value) != 1:
        return None
    token = value.get(ENVELOPE_KEY)
    if type(token) is not str:
        return None
    key_id, dot, body = token.partition(".")
    if not dot or len(key_id) != 32:
        return None
    try:
        sealed = base64.urlsafe_b64decode(body.encode())
    except (binascii.Error, ValueError):
        return None
    if len(sealed) <= _NONCE_BYTES:
        return None
    return key_id, sealed


def unseal(key: bytes, sealed: bytes, event_id: bytes, field: str) -> str:
    """The plaintext of an envelope's sealed bytes; ``InvalidTag`` if they were altered."""
    nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    plaintext: bytes = _aesgcm()(key).decrypt(nonce, body, _associated(event_id, field))
    return plaintext.decode()


class ShreddingStore(DelegatingStore):
    """An ``EventStore`` that encrypts personal fields on append and decrypts them on read.

    ``registry`` says which fields of which ``(type, version)`` are personal
    (see :class:`Personal`); events of other types pass unchanged. ``keys``
    holds one key per subject (``await keys.setup()`` first). Reads decrypt
    whatever envelope they meet, whatever the registry says, so old versions
    and upcasters see plaintext too. A value whose key was forgotten reads
    as :func:`redacted`; an envelope altered at rest raises
    ``EventDecodeError``. A top-level value shaped like an envelope is
    refused on append (``InvalidEventError``): ``"$pii"`` is reserved.
    """

    def __init__(
        self,
        inner: EventStore,
        keys: KeyStore,
        registry: EventRegistry,
        *,
        owns_inner: bool = True,
    ) -> None:
        super().__init__(inner, owns_inner=owns_inner)
        self.keys = keys
        self.registry = registry
        self._plans: dict[tuple[str, int], tuple[PersonalField, ...]] = {}
        _aesgcm()  # fail now, not on the first append, if cryptography is missing
        for model in registry:
            personal_fields(model)  # a misdeclared marker fails here, not on first append

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
            self._plans[(type_, version)] = plan
        return plan

    async def _seal_all(self, events: Sequence[NewEvent]) -> Sequence[NewEvent]:
        if isinstance(events, str | bytes | dict | NewEvent) or not hasattr(events, "__iter__"):
            return events  # the inner store refuses it with its usual error
        events = list(events)
        work: list[tuple[int, NewEvent, tuple[PersonalField, ...]]] = []
        subjects: set[str] = set()
        for i, ev in enumerate(events):
            if type(ev) is not NewEvent or type(ev.data) is not dict:
                continue
            for name, value in ev.data.items():
                if type(value) is dict and ENVELOPE_KEY in value:
                    msg = f"events[{i}].data[{name!r}]: {ENVELOPE_KEY!r} is reserved"
                    raise InvalidEventError(msg, argument=f"events[{i}].data", value=name)
            plan = self._plan(ev.type, ev.version) if type(ev.type) is str else ()
            if not plan:
                continue
            for f in plan:
                value = ev.data.get(f.name)
                if value is None:
                    continue
                if type(value) is not str:
                    msg = f"events[{i}].data[{f.name!r}] is personal and must be a str or None"
                    raise InvalidEventError(msg, argument=f"events[{i}].data", value=f.name)
                subject = ev.data.get(f.subject)
                if type(subject) is not str or not subject:
                    msg = (
                        f"events[{i}].data[{f.name!r}] is personal but its subject field "
                        f"{f.subject!r} holds no subject"
                    )
                    raise InvalidEventError(msg, argument=f"events[{i}].data", value=f.subject)
                check_subject(subject)
                subjects.add(subject)
            work.append((i, ev, plan))
        if not work:
            return events
        keys = {s: await self.keys.key_for(s) for s in sorted(subjects)}
        for i, ev, plan in work:
            data = dict(ev.data)
            event_id = ev.id.bytes
            for f in plan:
                value = ev.data.get(f.name)
                if type(value) is str:
                    key = keys[ev.data[f.subject]]
                    data[f.name] = seal(key.key_id, key.key, event_id, f.name, value)
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

    async def _open_all(self, records: list[RecordedEvent]) -> list[RecordedEvent]:
        found: list[tuple[int, dict[str, tuple[str, bytes]]]] = []
        wanted: set[str] = set()
        for i, r in enumerate(records):
            sealed: dict[str, tuple[str, bytes]] | None = None
            for name, value in r.data.items():
                if type(value) is dict:
                    env = envelope_of(value)
                    if env is not None:
                        if sealed is None:
                            sealed = {}
                        sealed[name] = env
                        wanted.add(env[0])
            if sealed is not None:
                found.append((i, sealed))
        if not found:
            return records
        keys = await self.keys.keys(wanted)
        out = list(records)
        for i, sealed in found:
            r = records[i]
            data = dict(r.data)
            for name, (key_id, body) in sealed.items():
                key = keys.get(key_id)
                if key is None:
                    data[name] = redacted(key_id)
                    continue
                try:
                    data[name] = unseal(key, body, r.id.bytes, name)
                except (_invalid_tag(), UnicodeDecodeError) as exc:
                    msg = f"event {r.stream}#{r.seq}: personal field {name!r} was altered at rest"
                    raise EventDecodeError(
                        msg,
                        type=r.type,
                        version=r.version,
                        stream=r.stream,
                        seq=r.seq,
                        event_id=r.id,
                    ) from exc
            out[i] = r._replace(data=data)
        return out

    async def read(
        self, stream: str, *, after: int = 0, limit: int | None = None, backwards: bool = False
    ) -> list[RecordedEvent]:
        """``read`` with personal fields decrypted (or redacted)."""
        records = await self.inner.read(stream, after=after, limit=limit, backwards=backwards)
        return await self._open_all(records)

    async def _opened(self, source: AsyncIterator[RecordedEvent]) -> AsyncIterator[RecordedEvent]:
        try:
            async for record in source:
                (opened,) = await self._open_all([record])
                yield opened
        finally:
            # A consumer that stops early closes this generator; close the store's too.
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        limit: int | None = None,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """``read_all`` with personal fields decrypted (or redacted)."""
        return self._opened(
            self.inner.read_all(after, limit=limit, stream_prefix=stream_prefix, types=types)
        )

    def subscribe(
        self,
        after: Checkpoint | None = None,
        *,
        stream_prefix: str | None = None,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """``subscribe`` with personal fields decrypted (or redacted)."""
        return self._opened(self.inner.subscribe(after, stream_prefix=stream_prefix, types=types))
