"""``python -m examples.booking``: see ``examples.booking.cli``."""

import sys

from examples.booking.cli import main

sys.exit(main())
