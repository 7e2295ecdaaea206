"""``python -m hwaccel``: the same as the ``hwaccel`` command."""

import sys

from hwaccel.cli import main

sys.exit(main())
