"""The admin command, ``python -m evsrc`` (or ``evsrc``): look after a store by its URL.

::

    evsrc --store URL setup                 create or migrate the schema (and repair it)
    evsrc --store URL status                schema, counts, head, projections, what holds back
    evsrc --store URL streams [--prefix P]  streams and their lengths
    evsrc --store URL read STREAM           a stream's events
    evsrc --store URL tail                  follow the global log until Ctrl-C / SIGTERM
    evsrc --store URL projections reset NAME
    evsrc --store URL parked list|show|replay|discard   a projection's parked events

``--store`` defaults to ``$EVSRC_STORE``; ``--tenant NAME`` (or ``$EVSRC_TENANT``)
works on that tenant's store only (:mod:`evsrc.tenants`). Tables for people, ``--json`` for
scripts. Exit codes: 0 done, 1 the store failed (retry later), 2 a usage or
configuration error (fix the command or the URL).
"""

from __future__ import annotations

from evsrc.admin.cli import main

__all__ = ["main"]
