"""``python -m evsrc``: the admin command (see :mod:`evsrc.admin`)."""

from __future__ import annotations

from evsrc.admin import main

if __name__ == "__main__":
    raise SystemExit(main())
