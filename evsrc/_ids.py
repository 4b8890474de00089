"""Fresh uuid4 event ids without a system call each.

``uuid.uuid4()`` reads 16 bytes from the OS per id; here the OS's random bytes
are drawn a block at a time and cut into ids, each with the version-4 and
variant bits set as ``uuid4`` sets them. Thread-safe (each block hands out its
slots through an atomic counter; an exhausted block is replaced under a lock)
and fork-safe (a child discards the block its parent was using).
"""

from __future__ import annotations

import itertools
import os
import threading
from uuid import UUID, SafeUUID

__all__ = ["uuid4"]

_IDS = 256  # ids per block: one os.urandom call
_new = object.__new__
_set = object.__setattr__
_UNKNOWN = SafeUUID.unknown
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)
_SLOTS = set(getattr(UUID, "__slots__", ())) >= {"int", "is_safe"}


class _Block:
    __slots__ = ("ints", "take")

    def __init__(self) -> None:
        data = os.urandom(16 * _IDS)
        # Each id's 128 bits with the version (4) and variant bits set, as uuid4 sets them.
        self.ints = [
            (int.from_bytes(data[i : i + 16], "big") & _CLEAR) | _SET
            for i in range(0, 16 * _IDS, 16)
        ]
        # next() on itertools.count is atomic under the GIL: no slot is handed out twice.
        self.take = itertools.count().__next__


_block = _Block()
_lock = threading.Lock()


def _renew(old: _Block) -> _Block:
    global _block
    with _lock:
        if _block is old:
            _block = _Block()
        return _block


def _reset_after_fork() -> None:
    global _block, _lock
    _lock = threading.Lock()
    _block = _Block()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def uuid4() -> UUID:
    """A random (version 4) UUID, as ``uuid.uuid4()`` makes."""
    block = _block
    i = block.take()
    while i >= _IDS:
        block = _renew(block)
        i = block.take()
    value = block.ints[i]
    if not _SLOTS:  # pragma: no cover - a future UUID without these slots
        return UUID(int=value)
    # What UUID.__setstate__ (unpickling) does: the int is already valid.
    u: UUID = _new(UUID)
    _set(u, "int", value)
    _set(u, "is_safe", _UNKNOWN)
    return u
